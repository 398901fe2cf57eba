"""Pipeline use cases that need no engine: create, retry and cancel (locked and audited, whichever door calls),
request a pipeline for a commit, supersede and cancel live ones."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.audit import service as audit
from taskmaster.core.errors import NotFound, Unavailable
from taskmaster.db.models import Pipeline, PipelineStep, Project, RecoveryRound
from taskmaster.db.triggers import add_unless_live
from taskmaster.pipelines import queries, transitions
from taskmaster.pipelines.definition import StepWhen
from taskmaster.pipelines.plan import PlannedStep
from taskmaster.pipelines.runs import create_run
from taskmaster.pipelines.states import PipelineStatus, PipelineType, StepStatus
from taskmaster.projects.credentials import Credentials
from taskmaster.workspaces.errors import WorkspaceError
from taskmaster.workspaces.git_cache import MirrorCache


@dataclass(frozen=True)
class PipelineRequest:
    """What to validate: a commit, why, and for which pull request or branch."""

    project_id: uuid.UUID
    commit_sha: str
    pipeline_type: str = PipelineType.VALIDATION.value
    trigger_event: str | None = None
    branch_name: str | None = None
    pull_request_id: uuid.UUID | None = None
    pull_request_number: int | None = None
    request_id: str | None = None

    @property
    def trigger_key(self) -> str:
        subject = f"pr{self.pull_request_number}" if self.pull_request_number is not None else self.branch_name
        return f"{self.pipeline_type}:{subject}:{self.commit_sha}"


@dataclass(frozen=True)
class Requested:
    pipeline: Pipeline
    created: bool
    """False when a live pipeline for the same trigger already existed (a burst of identical events)."""


async def create_pipeline(
    session: AsyncSession,
    project: Project,
    *,
    ref: str,
    pipeline_type: str = PipelineType.VALIDATION.value,
    trigger_event: str = "manual",
    mirror: MirrorCache,
    credentials: Credentials,
    actor: str,
) -> Pipeline:
    """A run of the project's pipeline for `ref`, planned and `pending`, with its audit row.

    `NotFound` names an unknown ref; `Unavailable` when the repository cannot be fetched. The first statement in
    `session` is the insert (the project may come from another session). The caller owns the transaction.
    """
    try:
        pipeline = await create_run(
            session, project, ref=ref, mirror=mirror, pipeline_type=pipeline_type, trigger_event=trigger_event,
            token=credentials.forge_token(project),
        )  # fmt: skip
    except WorkspaceError as exc:
        raise Unavailable(exc.detail) from exc
    await audit.record(
        session, actor=actor, action="pipeline.create", target_type="pipeline", target_id=pipeline.id,
        project_id=project.id, data={"ref": ref, "type": pipeline_type, "commit_sha": pipeline.commit_sha},
    )  # fmt: skip
    return pipeline


async def retry_pipeline(
    session: AsyncSession,
    source_id: uuid.UUID,
    *,
    mirror: MirrorCache,
    credentials: Credentials,
    actor: str,
    read: AsyncSession | None = None,
    step: str | None = None,
) -> Pipeline:
    """A new `pending` pipeline for the same project, commit and type as the finished `source_id`, with its audit
    row. `Conflict` while the source is live. The source is read through `read` when given (so the write
    transaction starts with the insert). The caller owns the transaction.

    With `step`, only that step, the steps it needs (their work is in the shared workspace it uses) and the steps
    that need it run again; every other step that succeeded in the source is kept as it ended (`reuse`), and the
    rest (failed, skipped, `on_failure`/`always` steps) run again too. `NotFound` when the source has no such step.
    """
    reader = read or session
    source, project = await queries.source_of_retry(reader, source_id)
    previous: dict[str, str] = {}
    if step is not None:
        previous = dict((await queries.get_state(reader, source_id)).steps)
        if step not in previous:
            raise NotFound(f"pipeline {source_id} has no step {step!r}: its steps are {', '.join(previous) or 'none'}")
    try:
        pipeline = await queries.retry_run(
            session, source, project, mirror=mirror, token=credentials.forge_token(project)
        )
    except WorkspaceError as exc:
        raise Unavailable(exc.detail) from exc
    if step is not None:
        await _reuse_outside(session, pipeline, source_id, step, previous)
    await audit.record(
        session, actor=actor, action="pipeline.retry", target_type="pipeline", target_id=pipeline.id,
        project_id=project.id, data={"retry_of": str(source_id), "commit_sha": pipeline.commit_sha, "step": step},
    )  # fmt: skip
    return pipeline


async def _reuse_outside(
    session: AsyncSession, pipeline: Pipeline, source_id: uuid.UUID, step: str, previous: dict[str, str]
) -> None:
    """Keep as `success` the new pipeline's steps off `step`'s path that succeeded in the source."""
    await session.flush()
    rows = list(await session.scalars(select(PipelineStep).where(PipelineStep.pipeline_id == pipeline.id)))
    needs = {row.step_name: set(row.needs) for row in rows}
    if step not in needs:
        return  # the commit's plan no longer has the step (or the pipeline is an error): everything runs
    path = {step} | _reachable(step, needs) | _reachable(step, _reversed(needs))
    reason = f"reused from pipeline {source_id} (not on the path of the retried step {step!r})"
    for row in rows:
        planned = PlannedStep.from_json(row.config)
        keep = (
            row.step_name not in path
            and previous.get(row.step_name) == StepStatus.SUCCESS.value
            and planned.when is StepWhen.ON_SUCCESS
        )
        if keep:
            transitions.apply_step(row, transitions.STEP_REUSE, reason=reason)


def _reversed(needs: dict[str, set[str]]) -> dict[str, set[str]]:
    dependents: dict[str, set[str]] = {name: set() for name in needs}
    for name, wanted in needs.items():
        for need in wanted:
            dependents.setdefault(need, set()).add(name)
    return dependents


def _reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(edges.get(name, ()))
    return seen


async def cancel_pipeline(session: AsyncSession, pipeline_id: uuid.UUID, *, reason: str, actor: str) -> Pipeline:
    """Cancel a live pipeline under its lock, with an audit row; an engine running it (in any process) stops its
    steps within its poll. `NotFound`, or `Conflict` when it has finished. The caller owns the transaction."""
    pipeline = await queries.lock_pipeline(session, pipeline_id)
    transitions.apply(pipeline, transitions.CANCEL, reason=reason)
    await audit.record(
        session, actor=actor, action="pipeline.cancel", target_type="pipeline", target_id=pipeline_id,
        project_id=pipeline.project_id, data={"reason": reason},
    )  # fmt: skip
    return pipeline


def _live(project_id: uuid.UUID) -> list[object]:
    return [Pipeline.project_id == project_id, Pipeline.status.in_([s.value for s in transitions.LIVE])]


async def request_pipeline(session: AsyncSession, request: PipelineRequest) -> Requested:
    """A `pending` pipeline for the request, or the live one that already covers the same trigger."""
    key = request.trigger_key
    query = select(Pipeline).where(*_live(request.project_id), Pipeline.trigger_key == key)  # type: ignore[arg-type]
    pipeline = Pipeline(
        project_id=request.project_id,
        pull_request_id=request.pull_request_id,
        pipeline_type=request.pipeline_type,
        status=PipelineStatus.PENDING.value,
        trigger_event=request.trigger_event,
        branch_name=request.branch_name,
        commit_sha=request.commit_sha,
        trigger_key=key,
        request_id=request.request_id,
    )
    row, created = await add_unless_live(session, pipeline, query)
    return Requested(row, created=created)


async def supersede_older(session: AsyncSession, newer: Pipeline) -> list[Pipeline]:
    """Live pipelines of the same pull request (and type) for another commit are superseded by `newer`, except the
    pipeline whose recovery pushed `newer`'s commit as its fix (it ends by its own rules)."""
    if newer.pull_request_id is None:
        return []
    fixed_by_newer = select(RecoveryRound.pipeline_id).where(RecoveryRound.fix_sha == newer.commit_sha)
    older = (
        await session.scalars(
            select(Pipeline).where(
                *_live(newer.project_id),  # type: ignore[arg-type]
                Pipeline.pull_request_id == newer.pull_request_id,
                Pipeline.pipeline_type == newer.pipeline_type,
                Pipeline.id != newer.id,
                Pipeline.id.not_in(fixed_by_newer),
            )
        )
    ).all()
    for pipeline in older:
        transitions.apply(pipeline, transitions.SUPERSEDE, reason=f"superseded by {newer.commit_sha}")
        pipeline.superseded_by = newer.id
    return list(older)


async def cancel_for_pull_request(session: AsyncSession, pull_request_id: uuid.UUID, *, reason: str) -> list[Pipeline]:
    """Cancel every live pipeline of a pull request (it was closed or merged)."""
    live = (
        await session.scalars(
            select(Pipeline).where(
                Pipeline.pull_request_id == pull_request_id,
                Pipeline.status.in_([s.value for s in transitions.LIVE]),
            )
        )
    ).all()
    for pipeline in live:
        transitions.apply(pipeline, transitions.CANCEL, reason=reason)
    return list(live)
