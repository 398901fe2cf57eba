"""/api/pipelines: pipelines, their steps and attempts, status, logs (SSE), create, retry and cancel.

Field names are those of `taskmaster pipeline list|show --json`. Creating and retrying only store a `pending`,
planned pipeline: the worker runs it. Logs stream as Server-Sent Events; each event's `id` is a resume token
(see `logs`), so a client that reconnects with `Last-Event-ID` gets nothing twice.

A credential limited to a project lists and creates only its project's pipelines (403 naming its project for
another), and a pipeline of another project answers 404 exactly as one that does not exist.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import PlainTextResponse
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
from taskmaster.auth.schemas import Principal
from taskmaster.core.errors import NotFound
from taskmaster.db.models import Pipeline
from taskmaster.db.session import Database
from taskmaster.pipelines import queries, service
from taskmaster.pipelines.logs import LogCursor, LogEnd, read_logs
from taskmaster.pipelines.logs import follow as follow_log
from taskmaster.pipelines.schemas import (
    CancelRequest,
    PipelineOut,
    PipelinePage,
    PipelineStatusOut,
    PipelineSummary,
    RetryRequest,
    RunRequest,
)
from taskmaster.pipelines.states import PipelineStatus, PipelineType
from taskmaster.projects.service import check_local_repository, get_project

router = APIRouter(prefix="/api/pipelines", tags=["pipelines"])


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
    return PipelinePage(items=[PipelineSummary.of(r) for r in rows], total=total, limit=limit, offset=offset)


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
    runtime = services.runtime
    # The project came from the read session: the write transaction's first statement is the insert.
    pipeline = await service.create_pipeline(
        session, project, ref=spec.ref, pipeline_type=spec.type.value, trigger_event="api", mirror=runtime.mirror,
        credentials=runtime.credentials, actor=principal.subject,
    )  # fmt: skip
    await session.commit()
    _wake(services)
    return PipelineOut.of_detail(await queries.get_detail(session, pipeline.id))


@router.get("/{pipeline_id}")
async def get_pipeline(pipeline_id: uuid.UUID, session: ReadSessionDep, principal: ScopedViewer) -> PipelineOut:
    """The pipeline with its steps (plan order) and every attempt of each."""
    await _visible(session, pipeline_id, principal)
    return PipelineOut.of_detail(await queries.get_detail(session, pipeline_id))


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
    reason = (spec.reason if spec else None) or f"canceled by {principal.subject}"
    await service.cancel_pipeline(session, pipeline_id, reason=reason, actor=principal.subject)
    await session.commit()
    return PipelineOut.of_detail(await queries.get_detail(session, pipeline_id))


@router.post("/{pipeline_id}/retry", status_code=status.HTTP_201_CREATED)
async def retry(
    pipeline_id: uuid.UUID,
    read: ReadSessionDep,
    session: SessionDep,
    services: ServicesDep,
    principal: ScopedDeveloper,
    spec: RetryRequest | None = None,
) -> PipelineOut:
    """A new `pending` pipeline for the same project, commit and type, planned afresh from that commit (409 while
    the pipeline is still live). With `step`, only that step's path runs again (see `RetryRequest`). The worker
    runs it."""
    await _visible(read, pipeline_id, principal)  # before the 409, which would tell that it exists
    runtime = services.runtime
    pipeline = await service.retry_pipeline(
        session, pipeline_id, mirror=runtime.mirror, credentials=runtime.credentials, actor=principal.subject,
        read=read, step=spec.step if spec else None,
    )  # fmt: skip
    await session.commit()
    _wake(services)
    return PipelineOut.of_detail(await queries.get_detail(session, pipeline.id))


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
    cursor = LogCursor.parse(last_event_id or offset, step)
    return EventSourceResponse(_events(services.db, pipeline_id, cursor, follow=follow))


async def _visible(session: AsyncSession, pipeline_id: uuid.UUID, principal: Principal) -> None:
    """404, worded as for a missing pipeline, when the pipeline lies outside a limited credential's project.

    Only a limited credential costs the query.
    """
    if principal.project_id is not None:
        owner = await session.scalar(select(Pipeline.project_id).where(Pipeline.id == pipeline_id))
        hide_outside(principal, owner, f"pipeline {pipeline_id} does not exist")


async def _events(
    db: Database, pipeline_id: uuid.UUID, cursor: LogCursor, *, follow: bool
) -> AsyncIterator[ServerSentEvent]:
    """Each chunk as an event whose id resumes after it; following, a last `end` event with the outcome."""
    async for item in follow_log(db, pipeline_id, cursor, live=follow):
        if isinstance(item, LogEnd):
            yield ServerSentEvent(data=json.dumps({"status": item.status, "failure_reason": item.failure_reason}),
                                  event="end")  # fmt: skip
        else:
            data = {"step": item.step, "attempt": item.attempt, "offset": item.offset, "content": item.content}
            yield ServerSentEvent(data=json.dumps(data), id=cursor.token())


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
