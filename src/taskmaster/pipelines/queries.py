"""Reads and small use cases behind the pipeline doors: list, show (steps and attempts), status, logs after a
cursor of per-step byte offsets, the write lock on one pipeline, and retry (a new run of the same commit)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, LargeBinary, and_, cast, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.errors import Conflict, NotFound
from taskmaster.costs.service import CostTotal, total
from taskmaster.db.models import (
    Pipeline,
    PipelineStep,
    Project,
    RecoveryRound,
    ReviewReport,
    StepAttempt,
    StepLog,
)
from taskmaster.pipelines.logs import LogChunk, chunks_query
from taskmaster.pipelines.runs import create_run
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.workspaces.git_cache import MirrorCache


@dataclass(frozen=True, slots=True)
class StepDetail:
    """A step row with its attempts, oldest first."""

    step: PipelineStep
    attempts: list[StepAttempt]


@dataclass(frozen=True, slots=True)
class PipelineDetail:
    """A pipeline row with its steps in plan order, and the tokens and cost of its AI calls (review, recovery)."""

    pipeline: Pipeline
    steps: list[StepDetail]
    recovery: list[RecoveryRound] = field(default_factory=list)
    """Its recovery rounds, by step and round."""
    reviews: list[ReviewReport] = field(default_factory=list)
    """The latest AI review report of each of its review steps, by step name."""
    ai: CostTotal = field(default_factory=lambda: CostTotal(0, 0, 0, 0.0))


@dataclass(frozen=True, slots=True)
class PipelineState:
    """What a polling client needs: the pipeline's status and each step's, in plan order."""

    id: uuid.UUID
    status: str
    failure_reason: str | None
    steps: list[tuple[str, str]]

    @property
    def finished(self) -> bool:
        return PipelineStatus(self.status).is_terminal


async def list_pipelines(
    session: AsyncSession,
    *,
    project_id: uuid.UUID | None = None,
    status: str | None = None,
    pipeline_type: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Pipeline], int]:
    """A page of pipelines, newest first, and how many match in all."""
    conditions: list[ColumnElement[bool]] = []
    if project_id is not None:
        conditions.append(Pipeline.project_id == project_id)
    if status is not None:
        conditions.append(Pipeline.status == status)
    if pipeline_type is not None:
        conditions.append(Pipeline.pipeline_type == pipeline_type)
    total = await session.scalar(select(func.count()).select_from(Pipeline).where(*conditions))
    # Ids are UUIDv7 (time-ordered): they break ties between pipelines created in the same instant.
    query = (
        select(Pipeline)
        .where(*conditions)
        .order_by(Pipeline.created_at.desc(), Pipeline.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(await session.scalars(query)), int(total or 0)


async def get_pipeline(session: AsyncSession, pipeline_id: uuid.UUID) -> Pipeline:
    """The pipeline, read afresh; `NotFound` if there is none."""
    pipeline = await session.get(Pipeline, pipeline_id, populate_existing=True)
    if pipeline is None:
        raise NotFound(f"pipeline {pipeline_id} does not exist")
    return pipeline


async def get_detail(session: AsyncSession, pipeline_id: uuid.UUID) -> PipelineDetail:
    """The pipeline with its steps (plan order), every attempt of each, its recovery rounds, its latest review
    report per review step and its AI calls summed."""
    pipeline = await get_pipeline(session, pipeline_id)
    steps = list(
        await session.scalars(
            select(PipelineStep).where(PipelineStep.pipeline_id == pipeline_id).order_by(PipelineStep.position)
        )
    )
    attempts: dict[uuid.UUID, list[StepAttempt]] = {step.id: [] for step in steps}
    if attempts:
        rows = await session.scalars(
            select(StepAttempt).where(StepAttempt.step_id.in_(list(attempts))).order_by(StepAttempt.attempt)
        )
        for attempt in rows:
            attempts[attempt.step_id].append(attempt)
    rounds = await session.scalars(
        select(RecoveryRound)
        .where(RecoveryRound.pipeline_id == pipeline_id)
        .order_by(RecoveryRound.step_name, RecoveryRound.round)
    )
    latest: dict[str, ReviewReport] = {}
    for report in await session.scalars(
        select(ReviewReport).where(ReviewReport.pipeline_id == pipeline_id).order_by(ReviewReport.created_at)
    ):
        latest[report.step_name or ""] = report
    return PipelineDetail(
        pipeline,
        [StepDetail(step, attempts[step.id]) for step in steps],
        list(rounds),
        [latest[name] for name in sorted(latest)],
        await total(session, pipeline_id=pipeline_id),
    )


async def get_state(session: AsyncSession, pipeline_id: uuid.UUID) -> PipelineState:
    """The pipeline's status and its steps' statuses, without loading whole rows."""
    row = (
        await session.execute(select(Pipeline.status, Pipeline.failure_reason).where(Pipeline.id == pipeline_id))
    ).first()
    if row is None:
        raise NotFound(f"pipeline {pipeline_id} does not exist")
    steps = await session.execute(
        select(PipelineStep.step_name, PipelineStep.status)
        .where(PipelineStep.pipeline_id == pipeline_id)
        .order_by(PipelineStep.position)
    )
    return PipelineState(pipeline_id, row.status, row.failure_reason, [(name, status) for name, status in steps])


async def step_names(session: AsyncSession, pipeline_id: uuid.UUID) -> list[str]:
    """The pipeline's step names in plan order."""
    rows = await session.scalars(
        select(PipelineStep.step_name).where(PipelineStep.pipeline_id == pipeline_id).order_by(PipelineStep.position)
    )
    return list(rows)


async def chunks_after(
    session: AsyncSession, pipeline_id: uuid.UUID, cursor: Mapping[str, int], *, step: str | None = None
) -> list[LogChunk]:
    """Stored chunks past a cursor of per-step byte offsets (a step not in it: from its start), by step in plan
    order, then offset. As in `logs.read_logs`, a chunk straddling its step's offset is cut to start there.

    The offsets are applied in the query, so following a long log reads only what is new.
    """
    size = _byte_length(session)
    query = chunks_query(pipeline_id, step=step)
    started = {name: after for name, after in cursor.items() if after > 0}
    if started:
        query = query.where(
            or_(
                PipelineStep.step_name.not_in(list(started)),
                *(
                    and_(PipelineStep.step_name == name, StepLog.offset + size > after)
                    for name, after in started.items()
                ),
            )
        )
    chunks: list[LogChunk] = []
    for name, attempt, seq, offset, content in (await session.execute(query)).all():
        after = cursor.get(name, 0)
        if offset < after:
            content = content.encode()[after - offset :].decode(errors="replace")
            offset = after
        chunks.append(LogChunk(name, attempt, seq, offset, content))
    return chunks


def _byte_length(session: AsyncSession) -> ColumnElement[int]:
    """The UTF-8 size of a chunk in SQL (offsets count bytes, and SQL's `length` counts characters)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.octet_length(StepLog.content)
    return func.length(cast(StepLog.content, LargeBinary))


async def lock_pipeline(session: AsyncSession, pipeline_id: uuid.UUID) -> Pipeline:
    """Take the pipeline's write lock as the transaction's first statement, then return it (`NotFound` if none).

    On SQLite a transaction that reads before it writes fails when another writer (an engine flushing logs)
    committed in between, so a write use case on a pipeline starts here; on PostgreSQL it is a row lock.
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(update(Pipeline).where(Pipeline.id == pipeline_id).values(updated_at=Pipeline.updated_at))
    else:
        await session.execute(select(Pipeline.id).where(Pipeline.id == pipeline_id).with_for_update())
    return await get_pipeline(session, pipeline_id)


async def source_of_retry(session: AsyncSession, pipeline_id: uuid.UUID) -> tuple[Pipeline, Project]:
    """The pipeline to retry and its project. `Conflict` while it is live or when it has no commit."""
    pipeline = await get_pipeline(session, pipeline_id)
    if not PipelineStatus(pipeline.status).is_terminal:
        raise Conflict(f"pipeline {pipeline_id} is {pipeline.status}: cancel it or let it finish before a retry")
    if not pipeline.commit_sha:
        raise Conflict(f"pipeline {pipeline_id} has no commit to run again")
    project = await session.get(Project, pipeline.project_id)
    if project is None:
        raise NotFound(f"project {pipeline.project_id} does not exist")
    return pipeline, project


async def retry_run(
    session: AsyncSession, source: Pipeline, project: Project, *, mirror: MirrorCache, token: str | None = None
) -> Pipeline:
    """A new `pending` pipeline of the same project, commit and type, freshly planned from that commit.

    It keeps the source's branch and pull request (so a newer push supersedes it as usual); `trigger_event` is
    "retry". Running it is the worker's job. The caller owns the transaction (see `create_run`).
    """
    assert source.commit_sha is not None
    pipeline = await create_run(
        session,
        project,
        ref=source.commit_sha,
        mirror=mirror,
        pipeline_type=source.pipeline_type,
        trigger_event="retry",
        token=token,
    )
    pipeline.branch_name = source.branch_name
    pipeline.pull_request_id = source.pull_request_id
    return pipeline


async def chunks_before(
    session: AsyncSession, pipeline_id: uuid.UUID, step: str, *, before: int | None, min_bytes: int
) -> list[LogChunk]:
    """One step's stored chunks that start before byte `before` (None: the end of the log), in order, reading back
    from there until at least `min_bytes` are in hand (or the log's start): the tail of a big log without reading
    the rest."""
    query = (
        select(StepLog.attempt, StepLog.seq, StepLog.offset, StepLog.content)
        .join(PipelineStep, PipelineStep.id == StepLog.step_id)
        .where(PipelineStep.pipeline_id == pipeline_id, PipelineStep.step_name == step)
        .order_by(StepLog.offset.desc(), StepLog.attempt.desc(), StepLog.seq.desc())
    )
    if before is not None:
        query = query.where(StepLog.offset < before)
    chunks: list[LogChunk] = []
    taken = 0
    batch = 16
    while taken < min_bytes:
        rows = (await session.execute(query.limit(batch).offset(len(chunks)))).all()
        for attempt, seq, offset, content in rows:
            chunk = LogChunk(step, attempt, seq, offset, content)
            if before is not None and chunk.end > before:
                cut = content.encode()[: before - offset].decode(errors="replace")
                chunk = LogChunk(step, attempt, seq, offset, cut)
            chunks.append(chunk)
            taken += chunk.end - chunk.offset
            if taken >= min_bytes:
                break
        if len(rows) < batch:
            break
    chunks.reverse()
    return chunks
