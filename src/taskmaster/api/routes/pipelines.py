"""/api/pipelines: pipelines, their steps and attempts, status, logs (SSE), create, retry and cancel.

Field names are those of `taskmaster pipeline list|show --json`. Creating and retrying only store a `pending`,
planned pipeline: the worker runs it. Logs stream as Server-Sent Events; each event's `id` is a resume token
(see `logs`), so a client that reconnects with `Last-Event-ID` gets nothing twice.

A credential limited to a project lists and creates only its project's pipelines (403 naming its project for
another), and a pipeline of another project answers 404 exactly as one that does not exist.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette import EventSourceResponse, ServerSentEvent

from taskmaster.api.deps import (
    PageOffset,
    ReadSessionDep,
    ScopedDeveloper,
    ScopedViewer,
    ServicesDep,
    SessionDep,
    hide_outside,
    project_filter,
    require_own_project,
)
from taskmaster.audit import service as audit
from taskmaster.auth.schemas import Principal
from taskmaster.core.errors import InvalidInput, NotFound, Unavailable
from taskmaster.db.models import Pipeline, StepAttempt
from taskmaster.db.session import Database
from taskmaster.pipelines import queries
from taskmaster.pipelines.engine import cancel_pipeline
from taskmaster.pipelines.logs import read_logs
from taskmaster.pipelines.runs import create_run
from taskmaster.pipelines.states import PipelineStatus, PipelineType
from taskmaster.projects.service import check_local_repository, get_project
from taskmaster.workspaces.errors import WorkspaceError
from taskmaster.workspaces.git_cache import MirrorCache

router = APIRouter(prefix="/api/pipelines", tags=["pipelines"])

FOLLOW_POLL_SECONDS = 0.3
"""How often a followed log is read again for new chunks."""
END_GRACE_SECONDS = 10.0
"""After a pipeline ends, how long a follower waits for steps still `running` (a cancel not yet seen by the
engine) to write their last output, before it ends the stream anyway (an engine that died leaves them so)."""


class PipelineSummary(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    pipeline_type: str
    status: str
    failure_reason: str | None
    branch_name: str | None
    commit_sha: str | None
    pull_request_id: uuid.UUID | None
    trigger_event: str | None
    superseded_by: uuid.UUID | None
    worker_id: str | None
    """The worker (or `pipeline run` process) that owns and runs it; another takes over if it dies."""
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    error_message: str | None


class AttemptOut(BaseModel):
    attempt: int
    status: str
    exit_code: int | None
    failure_reason: str | None
    error_message: str | None
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None


class StepOut(BaseModel):
    name: str
    type: str
    position: int
    needs: list[str]
    status: str
    retry_count: int
    max_retries: int
    exit_code: int | None
    failure_reason: str | None
    error_message: str | None
    next_attempt_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    attempts: list[AttemptOut]


class PipelineOut(PipelineSummary):
    steps: list[StepOut]


class PipelinePage(BaseModel):
    items: list[PipelineSummary]
    total: int
    limit: int
    offset: int


class PipelineStatusOut(BaseModel):
    id: uuid.UUID
    status: str
    failure_reason: str | None
    finished: bool
    steps: dict[str, str] = Field(description="Each step's status, in plan order.")


class RunRequest(BaseModel):
    project: str = Field(min_length=1, description="The project's id or name.")
    ref: str = Field(min_length=1, max_length=500, description="A branch, tag or commit of its repository.")
    type: PipelineType = PipelineType.VALIDATION


class CancelRequest(BaseModel):
    reason: str | None = Field(None, max_length=1000, description="Recorded as the pipeline's error message.")


def _summary(row: Pipeline) -> PipelineSummary:
    return PipelineSummary.model_validate(row, from_attributes=True)


def _attempt(row: StepAttempt) -> AttemptOut:
    return AttemptOut.model_validate(row, from_attributes=True)


def _detail(detail: queries.PipelineDetail) -> PipelineOut:
    steps = [
        StepOut(
            name=s.step.step_name,
            type=s.step.step_type,
            position=s.step.position,
            needs=s.step.needs,
            status=s.step.status,
            retry_count=s.step.retry_count,
            max_retries=s.step.max_retries,
            exit_code=s.step.exit_code,
            failure_reason=s.step.failure_reason,
            error_message=s.step.error_message,
            next_attempt_at=s.step.next_attempt_at,
            started_at=s.step.started_at,
            finished_at=s.step.finished_at,
            duration_ms=s.step.duration_ms,
            attempts=[_attempt(a) for a in s.attempts],
        )
        for s in detail.steps
    ]
    return PipelineOut(**_summary(detail.pipeline).model_dump(), steps=steps)


@router.get("")
async def list_pipelines(
    session: ReadSessionDep,
    principal: ScopedViewer,
    project: Annotated[str | None, Query(description="Only this project (id or name).")] = None,
    status_: Annotated[PipelineStatus | None, Query(alias="status")] = None,
    type_: Annotated[PipelineType | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: PageOffset = 0,
) -> PipelinePage:
    """Pipelines, newest first (of its own project only, for a credential limited to one)."""
    project_id = await project_filter(session, principal, project)
    rows, total = await queries.list_pipelines(
        session,
        project_id=project_id,
        status=status_.value if status_ else None,
        pipeline_type=type_.value if type_ else None,
        limit=limit,
        offset=offset,
    )
    return PipelinePage(items=[_summary(r) for r in rows], total=total, limit=limit, offset=offset)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_pipeline(
    spec: RunRequest,
    read: ReadSessionDep,
    session: SessionDep,
    services: ServicesDep,
    principal: ScopedDeveloper,
) -> PipelineOut:
    """A run of the project's pipeline for a ref, planned and `pending` (like `pipeline run --detach`); the worker
    runs it. An unknown ref, or a local repository that does not exist, is a 404 naming it; an invalid
    `.taskmaster.yml` gives an `error` pipeline."""
    await require_own_project(read, principal, spec.project)
    project = await get_project(read, spec.project)
    check_local_repository(project)
    try:
        # The project came from the read session: the write transaction's first statement is the insert.
        pipeline = await create_run(
            session,
            project,
            ref=spec.ref,
            mirror=MirrorCache.from_settings(services.settings),
            pipeline_type=spec.type.value,
            trigger_event="api",
            token=services.box.decrypt(project.forge_token),
        )
    except WorkspaceError as exc:
        raise Unavailable(exc.detail) from exc
    await audit.record(
        session, actor=principal.subject, action="pipeline.create", target_type="pipeline", target_id=pipeline.id,
        project_id=project.id, data={"ref": spec.ref, "type": spec.type.value, "commit_sha": pipeline.commit_sha},
    )  # fmt: skip
    await session.commit()
    _wake(services)
    return _detail(await queries.get_detail(session, pipeline.id))


@router.get("/{pipeline_id}")
async def get_pipeline(pipeline_id: uuid.UUID, session: ReadSessionDep, principal: ScopedViewer) -> PipelineOut:
    """The pipeline with its steps (plan order) and every attempt of each."""
    await _visible(session, pipeline_id, principal)
    return _detail(await queries.get_detail(session, pipeline_id))


@router.get("/{pipeline_id}/status")
async def pipeline_status(
    pipeline_id: uuid.UUID, session: ReadSessionDep, principal: ScopedViewer
) -> PipelineStatusOut:
    """The pipeline's status and each step's: small, for clients that poll."""
    await _visible(session, pipeline_id, principal)
    state = await queries.get_state(session, pipeline_id)
    return PipelineStatusOut(
        id=state.id,
        status=state.status,
        failure_reason=state.failure_reason,
        finished=state.finished,
        steps=dict(state.steps),
    )


@router.post("/{pipeline_id}/cancel")
async def cancel(
    pipeline_id: uuid.UUID,
    read: ReadSessionDep,
    session: SessionDep,
    principal: ScopedDeveloper,
    spec: CancelRequest | None = None,
) -> PipelineOut:
    """Cancel a live pipeline (409 when it has finished); an engine running it stops its steps within its poll."""
    # On the read session: the write transaction still starts with the lock.
    await _visible(read, pipeline_id, principal)
    await queries.lock_pipeline(session, pipeline_id)
    reason = (spec.reason if spec else None) or f"canceled by {principal.subject}"
    pipeline = await cancel_pipeline(session, pipeline_id, reason=reason)
    await audit.record(
        session, actor=principal.subject, action="pipeline.cancel", target_type="pipeline", target_id=pipeline_id,
        project_id=pipeline.project_id, data={"reason": reason},
    )  # fmt: skip
    await session.commit()
    return _detail(await queries.get_detail(session, pipeline_id))


@router.post("/{pipeline_id}/retry", status_code=status.HTTP_201_CREATED)
async def retry(
    pipeline_id: uuid.UUID,
    read: ReadSessionDep,
    session: SessionDep,
    services: ServicesDep,
    principal: ScopedDeveloper,
) -> PipelineOut:
    """A new `pending` pipeline for the same project, commit and type, planned afresh from that commit (409 while
    the pipeline is still live). The worker runs it."""
    await _visible(read, pipeline_id, principal)  # before the 409, which would tell that it exists
    source, project = await queries.source_of_retry(read, pipeline_id)
    try:
        pipeline = await queries.retry_run(
            session,
            source,
            project,
            mirror=MirrorCache.from_settings(services.settings),
            token=services.box.decrypt(project.forge_token),
        )
    except WorkspaceError as exc:
        raise Unavailable(exc.detail) from exc
    await audit.record(
        session, actor=principal.subject, action="pipeline.retry", target_type="pipeline", target_id=pipeline.id,
        project_id=project.id, data={"retry_of": str(pipeline_id), "commit_sha": pipeline.commit_sha},
    )  # fmt: skip
    await session.commit()
    _wake(services)
    return _detail(await queries.get_detail(session, pipeline.id))


@router.get(
    "/{pipeline_id}/logs",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}, "text/plain": {}}}},
)
async def logs(
    pipeline_id: uuid.UUID,
    request: Request,
    session: ReadSessionDep,
    services: ServicesDep,
    principal: ScopedViewer,
    step: Annotated[str | None, Query(description="Only this step.")] = None,
    offset: Annotated[
        str | None,
        Query(description="Resume after this token (as `Last-Event-ID`, which wins when both are given)."),
    ] = None,
    follow: Annotated[bool, Query(description="Keep streaming until the pipeline ends, then `event: end`.")] = False,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """The stored output as Server-Sent Events: one event per chunk, `data` = JSON `{step, attempt, offset,
    content}`, in step (plan) order, then offset.

    Offsets count bytes per step. The resume token (each event's `id`) is the byte offset after the chunk when
    `step` is given, and otherwise `name:offset` pairs of every step seen so far, joined by commas (step names
    hold neither character). A plain number without `step` applies to every step, as in `read_logs`, so `0` is
    the whole log. Without `follow` the stream ends after the stored chunks; with it, new chunks are polled for
    until the pipeline ends, and a last `event: end` carries `{status, failure_reason}`. With `Accept: text/plain`
    (and no `text/event-stream`) the stored log comes back as text, with a header line per step and attempt.
    """
    await _visible(session, pipeline_id, principal)
    await queries.get_pipeline(session, pipeline_id)
    if step is not None and step not in await queries.step_names(session, pipeline_id):
        raise NotFound(f"pipeline {pipeline_id} has no step {step!r}")
    accept = request.headers.get("accept", "")
    if "text/plain" in accept and "text/event-stream" not in accept:
        return PlainTextResponse(await _plain_text(session, pipeline_id, step))
    token = _parse_cursor(last_event_id or offset, step)
    return EventSourceResponse(_stream(services.db, pipeline_id, step, token, follow=follow))


async def _visible(session: AsyncSession, pipeline_id: uuid.UUID, principal: Principal) -> None:
    """404, worded as for a missing pipeline, when the pipeline lies outside a limited credential's project.

    Only a limited credential costs the query.
    """
    if principal.project_id is not None:
        owner = await session.scalar(select(Pipeline.project_id).where(Pipeline.id == pipeline_id))
        hide_outside(principal, owner, f"pipeline {pipeline_id} does not exist")


# ASCII digits only ('²'.isdigit() is true), and few enough to fit the 64-bit offset column.
_BYTE_OFFSET = re.compile(r"[0-9]{1,18}")


def _parse_cursor(token: str | None, step: str | None) -> tuple[dict[str, int], int]:
    """Per-step offsets from a resume token, and the offset of steps it does not list.

    A token is a number (for `step`, or for every step) or `name:offset,…` pairs (steps not listed: from 0).
    """
    token = (token or "").strip()
    if not token:
        return {}, 0
    if _BYTE_OFFSET.fullmatch(token):
        return ({step: int(token)}, 0) if step is not None else ({}, int(token))
    cursor: dict[str, int] = {}
    for pair in token.split(","):
        name, sep, number = pair.strip().rpartition(":")
        if not sep or not name or not _BYTE_OFFSET.fullmatch(number):
            raise InvalidInput(f"not a log resume token: {token[:200]!r} (a byte offset, or name:offset,…)")
        cursor[name] = int(number)
    return ({step: cursor.get(step, 0)}, 0) if step is not None else (cursor, 0)


def _token(cursor: dict[str, int], step: str | None) -> str:
    if step is not None:
        return str(cursor.get(step, 0))
    return ",".join(f"{name}:{after}" for name, after in cursor.items())


async def _stream(
    db: Database, pipeline_id: uuid.UUID, step: str | None, token: tuple[dict[str, int], int], *, follow: bool
) -> AsyncIterator[ServerSentEvent]:
    """The events: stored chunks past the cursor, then (following) new ones until the pipeline has ended."""
    cursor, default = token
    loop = asyncio.get_running_loop()
    ended_at: float | None = None
    while True:
        # A session per poll (not the request's): the stream outlives the route, and holding one connection for
        # as long as someone watches would starve the pool.
        async with db.autocommit_session() as session:
            # Status first: when it is final, the chunks read next hold everything its steps wrote.
            state = await queries.get_state(session, pipeline_id) if follow else None
            names = [name for name, _ in state.steps] if state else await queries.step_names(session, pipeline_id)
            for name in names if step is None else [step]:
                # Every step is in each token, so a resume never reads a step from its start again.
                cursor.setdefault(name, default)
            chunks = await queries.chunks_after(session, pipeline_id, cursor, step=step)
        for chunk in chunks:
            cursor[chunk.step] = chunk.end
            data = {"step": chunk.step, "attempt": chunk.attempt, "offset": chunk.offset, "content": chunk.content}
            yield ServerSentEvent(data=json.dumps(data), id=_token(cursor, step))
        if state is None:
            return
        if state.finished:
            ended_at = ended_at if ended_at is not None else loop.time()
            running = any(status == "running" for name, status in state.steps if step in (None, name))
            if not running or loop.time() - ended_at >= END_GRACE_SECONDS:
                end = {"status": state.status, "failure_reason": state.failure_reason}
                yield ServerSentEvent(data=json.dumps(end), event="end")
                return
        await asyncio.sleep(FOLLOW_POLL_SECONDS)


async def _plain_text(session: AsyncSession, pipeline_id: uuid.UUID, step: str | None) -> str:
    parts: list[str] = []
    current: tuple[str, int] | None = None
    for chunk in await read_logs(session, pipeline_id, step=step):
        if step is None and (chunk.step, chunk.attempt) != current:
            parts.append(f"--- {chunk.step} (attempt {chunk.attempt}) ---\n")
        current = (chunk.step, chunk.attempt)
        parts.append(chunk.content)
    return "".join(parts)


def _wake(services: ServicesDep) -> None:
    """A worker in this process takes the new pipeline now rather than at its next poll."""
    if services.wake_worker is not None:
        services.wake_worker()
