"""Which worker runs which pipeline: claiming pending ones, taking over those whose worker died, ending stuck ones.
The lease itself (an owner held through its heartbeat, take-over when stale) is the shared one of `db.leases`.

A pipeline's `worker_id` names the worker (its `workers.name`, heart-beating) whose engine owns it. The rules:

- A worker claims a `pending`, unowned pipeline when its project has fewer than `project_concurrency` pipelines
  owned and live. Claims are serialized by a transaction-level advisory lock on PostgreSQL (a claim is one short
  UPDATE), so the per-project limit holds across workers.
- The reaper (every worker runs it) takes over a live pipeline whose owner's heartbeat is older than
  `stale_after_seconds`, whose owner stopped, or that has no owner row at all; the UPDATE is conditional on the old
  owner, so exactly one worker wins. The new owner's engine resumes it: attempts left `running` are failed as
  `infra` ("agent lost") and retried by the usual rules.
- An owner fences itself: its engine stops its steps when its own heartbeat has not reached the database for half
  of `stale_after_seconds` (see `Lease`), so an attempt never runs on two workers at once as long as
  `grace + poll < stale_after / 2` and the workers' clocks agree to within a few seconds.
- A pipeline `running` past `pipeline_max_seconds` is stuck: the reaper ends it `timed_out` whatever its owner does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from taskmaster.core.clock import utcnow
from taskmaster.db.leases import LAPSE_CHECK_SECONDS as LAPSE_CHECK_SECONDS
from taskmaster.db.leases import Lease as Lease
from taskmaster.db.leases import Leased, find_stale
from taskmaster.db.leases import take_over as take_over_row
from taskmaster.db.models import Pipeline
from taskmaster.db.session import Database
from taskmaster.pipelines import transitions
from taskmaster.pipelines.states import FailureReason, PipelineStatus

_LIVE = [status.value for status in transitions.LIVE]
_CLAIM_LOCK = 0x7461736B  # "task": one advisory lock key for claims, held for a claim's transaction only


@dataclass(frozen=True, slots=True)
class Lost:
    """A live pipeline whose owner is gone (or that never had one)."""

    pipeline_id: uuid.UUID
    previous_owner: str | None


PIPELINES = Leased(
    Pipeline, Pipeline.id, Pipeline.worker_id, and_(Pipeline.status.in_(_LIVE), Pipeline.trial_of.is_(None))
)
"""Pipelines are held through their worker's heartbeat (`db.leases`). Recovery trials are not: only the recovery
run that made one runs it (a run started again cancels its interrupted trial), never a loop resuming or taking over."""


async def claim_next(db: Database, worker_id: str, *, project_concurrency: int) -> uuid.UUID | None:
    """Make `worker_id` the owner of the oldest claimable pending pipeline and return its id; None if there is none.

    One short transaction of its own. Claims are serialized (an advisory lock on PostgreSQL, the process's writer
    lock on SQLite) so that the per-project limit holds; the UPDATE is conditional besides, so that a pipeline is
    never claimed twice even by processes sharing a SQLite file.
    """
    async with db.single_writer(), db.transaction() as session:
        return await _claim(session, worker_id, project_concurrency=project_concurrency, dialect=db.dialect)


async def _claim(session: AsyncSession, worker_id: str, *, project_concurrency: int, dialect: str) -> uuid.UUID | None:
    if dialect == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIM_LOCK})
    other = aliased(Pipeline)
    owned = (
        select(func.count())
        .select_from(other)
        .where(other.project_id == Pipeline.project_id, other.status.in_(_LIVE), other.worker_id.is_not(None))
        .scalar_subquery()
    )
    query = (
        select(Pipeline.id)
        .where(
            Pipeline.status == PipelineStatus.PENDING.value,
            Pipeline.worker_id.is_(None),
            owned < project_concurrency,
        )
        .order_by(Pipeline.created_at)
        .limit(1)
    )
    pipeline_id = await session.scalar(query)
    if pipeline_id is None:
        return None
    claimed = await session.execute(
        update(Pipeline).where(Pipeline.id == pipeline_id, Pipeline.worker_id.is_(None)).values(worker_id=worker_id)
    )
    return pipeline_id if getattr(claimed, "rowcount", 0) == 1 else None


async def find_lost(
    session: AsyncSession, *, worker_id: str, stale_after_seconds: float, now: datetime | None = None
) -> list[Lost]:
    """Live pipelines owned by a worker other than `worker_id` that is gone, and started ones with no owner."""
    unowned = and_(Pipeline.worker_id.is_(None), Pipeline.status != PipelineStatus.PENDING.value)
    found = await find_stale(
        session, PIPELINES, worker_id=worker_id, stale_after_seconds=stale_after_seconds, also=unowned, now=now
    )
    return [Lost(item.row_id, item.previous_owner) for item in found]


async def owned_by(session: AsyncSession, worker_id: str) -> list[uuid.UUID]:
    """Live pipelines owned by `worker_id` (after a restart under the same name: the ones it must resume)."""
    rows = await session.scalars(
        select(Pipeline.id).where(
            Pipeline.worker_id == worker_id, Pipeline.status.in_(_LIVE), Pipeline.trial_of.is_(None)
        )
    )
    return list(rows.all())


async def take_over(session: AsyncSession, lost: Lost, *, worker_id: str) -> bool:
    """Make `worker_id` the owner of a lost pipeline if nobody else did first; True if this call won."""
    return await take_over_row(
        session, PIPELINES, lost.pipeline_id, previous_owner=lost.previous_owner, new_owner=worker_id
    )


async def end_stuck(
    session: AsyncSession, *, max_seconds: float, dialect: str, now: datetime | None = None
) -> list[uuid.UUID]:
    """End every pipeline `running` for more than `max_seconds` as `timed_out` (rule REAP), with its unfinished
    steps and attempts canceled; returns their ids. The caller owns the transaction."""
    now = now or utcnow()
    query = select(Pipeline).where(
        Pipeline.status == PipelineStatus.RUNNING.value, Pipeline.started_at < now - timedelta(seconds=max_seconds)
    )
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    reason = f"stuck: running for more than {max_seconds:g} s (the limit for any pipeline); ended by the reaper"
    ended = []
    for pipeline in (await session.scalars(query)).all():
        await transitions.end_with_steps(
            session,
            pipeline,
            transitions.REAP,
            reason=reason,
            step_reason="stopped: the pipeline was stuck",
            failure_reason=FailureReason.TIMEOUT,
            now=now,
        )
        ended.append(pipeline.id)
    return ended
