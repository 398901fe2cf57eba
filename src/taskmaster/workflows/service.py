"""Workflow runs as a queue: request one per live trigger, claim the oldest pending one, finish it, and take over the
runs of workers that died (the lease of `db.leases`, held through the worker's heartbeat)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.clock import utcnow
from taskmaster.core.errors import NotFound
from taskmaster.db.leases import Leased, Stale, find_stale, take_over
from taskmaster.db.models import WorkflowRun
from taskmaster.db.session import Database
from taskmaster.db.triggers import add_unless_live
from taskmaster.workflows.base import LIVE_RUN_STATUSES, RunInput, RunResult

RUNS = Leased(WorkflowRun, WorkflowRun.id, WorkflowRun.worker_id, WorkflowRun.status.in_(LIVE_RUN_STATUSES))
"""Runs are held through their worker's heartbeat, as pipelines are."""


@dataclass(frozen=True)
class RunRequest:
    """A run to make: its kind, the project, and `subject`, what makes two requests the same run while one is
    live (e.g. `pr12:<sha>`, or a pipeline's step)."""

    project_id: uuid.UUID
    kind: str
    subject: str
    pipeline_id: uuid.UUID | None = None
    step_name: str | None = None
    pull_request_id: uuid.UUID | None = None
    commit_sha: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    trigger_event: str | None = None
    request_id: str | None = None

    @property
    def trigger_key(self) -> str:
        return f"{self.kind}:{self.subject}"[:700]


@dataclass(frozen=True)
class RequestedRun:
    run: WorkflowRun
    created: bool
    """False when a live run for the same trigger already existed."""


async def request_run(session: AsyncSession, request: RunRequest) -> RequestedRun:
    """A `pending` run for the request, or the live one that already covers the same trigger. The caller owns the
    transaction (a webhook's processing, an engine recording a step)."""
    query = select(WorkflowRun).where(
        WorkflowRun.project_id == request.project_id,
        WorkflowRun.trigger_key == request.trigger_key,
        WorkflowRun.status.in_(LIVE_RUN_STATUSES),
    )
    run, created = await add_unless_live(session, _new_run(request), query)
    return RequestedRun(run, created=created)


async def request_runs(session: AsyncSession, requests: Sequence[RunRequest]) -> list[RequestedRun]:
    """`request_run` for many requests of one project, in order: one query for the live runs that already cover
    some, one savepoint for the rest (a concurrent request that wins on the unique index sends them one by one
    through `request_run`)."""
    if not requests:
        return []
    project_ids = {request.project_id for request in requests}
    if len(project_ids) != 1:
        raise ValueError("request_runs takes the requests of one project")
    live = await session.scalars(
        select(WorkflowRun).where(
            WorkflowRun.project_id == requests[0].project_id,
            WorkflowRun.trigger_key.in_({request.trigger_key for request in requests}),
            WorkflowRun.status.in_(LIVE_RUN_STATUSES),
        )
    )
    existing = {run.trigger_key: run for run in live.all()}
    made: dict[str, WorkflowRun] = {}
    for request in requests:
        if request.trigger_key not in existing and request.trigger_key not in made:
            made[request.trigger_key] = _new_run(request)
    try:
        async with session.begin_nested():
            session.add_all(made.values())
    except IntegrityError:
        return [await request_run(session, request) for request in requests]
    return [
        RequestedRun(existing[key], created=False) if key in existing else RequestedRun(made[key], created=True)
        for key in (request.trigger_key for request in requests)
    ]


def _new_run(request: RunRequest) -> WorkflowRun:
    return WorkflowRun(
        project_id=request.project_id,
        kind=request.kind,
        status="pending",
        trigger_key=request.trigger_key,
        trigger_event=(request.trigger_event or "")[:100] or None,
        request_id=(request.request_id or "")[:100] or None,
        pipeline_id=request.pipeline_id,
        step_name=request.step_name,
        pull_request_id=request.pull_request_id,
        commit_sha=request.commit_sha,
        params=dict(request.params),
        result={},
        attempts=0,
    )


async def claim_next(
    db: Database, worker_id: str, *, kinds: Collection[str], pipeline_id: uuid.UUID | None = None
) -> RunInput | None:
    """Make `worker_id` the owner of the oldest pending run of one of `kinds` (of `pipeline_id` only, when given:
    `pipeline run` runs its own pipeline's runs) and start it (`running`); None if there is none. One short
    transaction; the UPDATE is conditional, so a run is never claimed twice."""
    async with db.single_writer(), db.transaction() as session:
        query = (
            select(WorkflowRun.id)
            .where(WorkflowRun.status == "pending", WorkflowRun.worker_id.is_(None), WorkflowRun.kind.in_(kinds))
            .order_by(WorkflowRun.created_at)
            .limit(1)
        )
        if pipeline_id is not None:
            query = query.where(WorkflowRun.pipeline_id == pipeline_id)
        if db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        run_id = await session.scalar(query)
        if run_id is None:
            return None
        claimed = await session.execute(
            update(WorkflowRun)
            .where(WorkflowRun.id == run_id, WorkflowRun.status == "pending", WorkflowRun.worker_id.is_(None))
            .values(worker_id=worker_id, status="running", started_at=utcnow(), attempts=WorkflowRun.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            return None
        return _input(await _get(session, run_id))


async def restart(db: Database, run_id: uuid.UUID, worker_id: str) -> RunInput | None:
    """Start again a run this worker owns (taken over, or left by this worker's previous life); None when it has
    finished or is not this worker's."""
    async with db.transaction() as session:
        started = await session.execute(
            update(WorkflowRun)
            .where(WorkflowRun.id == run_id, WorkflowRun.worker_id == worker_id, RUNS.live)
            .values(status="running", started_at=utcnow(), attempts=WorkflowRun.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(started, "rowcount", 0) != 1:
            return None
        return _input(await _get(session, run_id))


async def finish(db: Database, run_id: uuid.UUID, worker_id: str, outcome: RunResult) -> bool:
    """Record how a run ended, if `worker_id` still owns it; False when it lost the run meanwhile."""
    async with db.transaction() as session:
        done = await session.execute(
            update(WorkflowRun)
            .where(WorkflowRun.id == run_id, WorkflowRun.worker_id == worker_id, WorkflowRun.status == "running")
            .values(
                status=outcome.status,
                result=outcome.result,
                error_message=outcome.error,
                finished_at=utcnow(),
                worker_id=None,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(done, "rowcount", 0) == 1)


async def find_lost(session: AsyncSession, *, worker_id: str, stale_after_seconds: float) -> list[Stale]:
    """Live runs owned by a worker other than `worker_id` that is gone."""
    return await find_stale(session, RUNS, worker_id=worker_id, stale_after_seconds=stale_after_seconds)


async def take_over_run(session: AsyncSession, lost: Stale, *, worker_id: str) -> bool:
    """Make `worker_id` the owner of a lost run if nobody else did first; True if this call won."""
    return await take_over(session, RUNS, lost.row_id, previous_owner=lost.previous_owner, new_owner=worker_id)


async def owned_by(session: AsyncSession, worker_id: str) -> list[uuid.UUID]:
    """Live runs `worker_id` owns (after a restart under the same name: the ones it must start again)."""
    rows = await session.scalars(select(WorkflowRun.id).where(WorkflowRun.worker_id == worker_id, RUNS.live))
    return list(rows.all())


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> WorkflowRun:
    return await _get(session, run_id)


async def _get(session: AsyncSession, run_id: uuid.UUID) -> WorkflowRun:
    run = await session.get(WorkflowRun, run_id, populate_existing=True)
    if run is None:
        raise NotFound(f"workflow run {run_id} does not exist")
    return run


def _input(run: WorkflowRun) -> RunInput:
    return RunInput(
        run_id=run.id,
        kind=run.kind,
        project_id=run.project_id,
        attempt=run.attempts,
        pipeline_id=run.pipeline_id,
        step_name=run.step_name,
        pull_request_id=run.pull_request_id,
        commit_sha=run.commit_sha,
        params=dict(run.params or {}),
        requested_at=run.created_at,
    )
