"""Pipeline pages: the filtered list (keyset paging), one pipeline (graph, waterfall, attempts, logs), live
updates over one SSE stream, earlier log lines on demand, the raw log, and start, retry and cancel."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Header, Query, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette import EventSourceResponse, ServerSentEvent

from taskmaster.core.clock import utcnow
from taskmaster.core.errors import InvalidInput, NotFound
from taskmaster.db.models import Pipeline, PullRequest
from taskmaster.pipelines import queries, service
from taskmaster.pipelines.logs import LogChunk, LogCursor, read_logs
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.projects.service import get_project, list_projects
from taskmaster.web import svg
from taskmaster.web.ansi import AnsiRenderer
from taskmaster.web.deps import DeveloperDep, Viewer, ViewerDep, services
from taskmaster.web.pages import PageRoute, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
TAIL_LINES = 500
"""Lines of each step's log shown when the page opens; earlier ones load on demand."""
TAIL_BYTES = 256 * 1024
LIVE_POLL_SECONDS = 0.2
FILTERS = ("project", "status", "branch", "trigger", "pr", "author")


@router.get("/pipelines", response_class=HTMLResponse)
async def pipeline_list(
    request: Request,
    viewer: ViewerDep,
    project: str | None = None,
    status: str | None = None,
    branch: str | None = None,
    trigger: str | None = None,
    pr: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    author: str | None = None,
    before: str | None = None,
) -> Response:
    """Newest first, `PAGE_SIZE` a page; `before` is the last row's key (`created_at|id`), so a page costs the same
    however deep it is and rows arriving meanwhile never shift it."""
    if status and status not in {s.value for s in PipelineStatus}:
        raise InvalidInput(f"unknown status {status!r}: one of {', '.join(s.value for s in PipelineStatus)}")
    async with services(request).db.autocommit_session() as session:
        projects = [p for p in await list_projects(session) if viewer.sees(p.id)]
        conditions: list[ColumnElement[bool]] = [Pipeline.project_id.in_([p.id for p in projects])]
        if project:
            chosen = await get_project(session, project)
            viewer.check_visible(chosen.id, f"project {project!r} does not exist")
            conditions.append(Pipeline.project_id == chosen.id)
        if status:
            conditions.append(Pipeline.status == status)
        if branch:
            conditions.append(Pipeline.branch_name == branch)
        if trigger:
            conditions.append(Pipeline.trigger_event == trigger)
        query = select(Pipeline)
        if pr is not None or author:
            query = query.join(PullRequest, PullRequest.id == Pipeline.pull_request_id)
            if pr is not None:
                conditions.append(PullRequest.number == pr)
            if author:
                conditions.append(PullRequest.author == author)
        if before:
            conditions.append(_before(before))
        rows = list(
            await session.scalars(
                query.where(*conditions).order_by(Pipeline.created_at.desc(), Pipeline.id.desc()).limit(PAGE_SIZE + 1)
            )
        )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    kept = {name: request.query_params[name] for name in FILTERS if request.query_params.get(name)}
    next_key = f"{rows[-1].created_at.isoformat()}|{rows[-1].id}" if more else None
    return render(
        request, "pipelines.html", viewer, pipelines=rows, projects=projects, names={p.id: p.name for p in projects},
        filters=kept, next_key=next_key, statuses=[s.value for s in PipelineStatus],
    )  # fmt: skip


def _before(key: str) -> ColumnElement[bool]:
    moment, _, ident = key.partition("|")
    try:
        created, row_id = datetime.fromisoformat(moment), uuid.UUID(ident)
    except ValueError:
        raise InvalidInput(f"not a page key: {key[:100]!r}") from None
    return or_(Pipeline.created_at < created, and_(Pipeline.created_at == created, Pipeline.id < row_id))


@router.post("/pipelines")
async def start_pipeline(
    request: Request,
    viewer: DeveloperDep,
    project: Annotated[str, Form(min_length=1, max_length=200)],
    ref: Annotated[str, Form(min_length=1, max_length=500)],
) -> Response:
    app = services(request)
    async with app.db.autocommit_session() as read:
        chosen = await get_project(read, project)
    viewer.check_visible(chosen.id, f"project {project!r} does not exist")
    runtime = app.runtime
    async with app.db.transaction() as session:
        pipeline = await service.create_pipeline(
            session, chosen, ref=ref, trigger_event="dashboard", mirror=runtime.mirror,
            credentials=runtime.credentials, actor=viewer.principal.subject,
        )  # fmt: skip
    if app.wake_worker is not None:
        app.wake_worker()
    return RedirectResponse(f"/pipelines/{pipeline.id}", status_code=303)


async def _detail(request: Request, viewer: Viewer, pipeline_id: uuid.UUID) -> queries.PipelineDetail:
    async with services(request).db.autocommit_session() as session:
        detail = await queries.get_detail(session, pipeline_id)
    viewer.check_visible(detail.pipeline.project_id, f"pipeline {pipeline_id} does not exist")
    return detail


@router.get("/pipelines/{pipeline_id}", response_class=HTMLResponse)
async def pipeline_page(request: Request, pipeline_id: uuid.UUID, viewer: ViewerDep) -> Response:
    detail = await _detail(request, viewer, pipeline_id)
    pipeline = detail.pipeline
    async with services(request).db.autocommit_session() as session:
        project = await get_project(session, pipeline.project_id)
        tails = {s.step.step_name: await _tail(session, pipeline_id, s.step.step_name) for s in detail.steps}
    nodes = [
        svg.Node(
            s.step.step_name, s.step.step_name, tuple(s.step.needs), s.step.status, href=f"#step-{s.step.step_name}"
        )
        for s in detail.steps
    ]
    bars = {
        s.step.step_name: [
            svg.Bar(a.started_at, a.finished_at, a.status) for a in s.attempts if a.started_at is not None
        ]
        for s in detail.steps
    }
    origin = pipeline.started_at or pipeline.created_at
    return render(
        request, "pipeline.html", viewer, pipeline=pipeline, project=project, steps=detail.steps, tails=tails,
        rounds=detail.recovery, reviews=detail.reviews, ai=detail.ai,
        graph=svg.graph(nodes, title="Steps and their needs"),
        waterfall=svg.waterfall(bars, origin=origin, now=utcnow(), title="Step timings"),
        finished=PipelineStatus(pipeline.status).is_terminal,
    )  # fmt: skip


async def _tail(session: AsyncSession, pipeline_id: uuid.UUID, step: str) -> tuple[str, int, int]:
    """The last `TAIL_LINES` lines of a step's log as HTML, the byte offset they start at, and where it ends."""
    chunks = await queries.chunks_before(session, pipeline_id, step, before=None, min_bytes=TAIL_BYTES)
    return _render_window(chunks, TAIL_LINES)


def _render_window(chunks: list[LogChunk], lines: int) -> tuple[str, int, int]:
    if not chunks:
        return "", 0, 0
    text = "".join(c.content for c in chunks)
    start, end = chunks[0].offset, chunks[-1].end
    cut = _cut_to_last_lines(text, lines)
    start += len(text[:cut].encode())
    renderer = AnsiRenderer()
    # Colours set before the window still apply in it: carry the style over what is not shown.
    renderer.skip(text[:cut])
    return renderer.feed(text[cut:]), start, end


def _cut_to_last_lines(text: str, lines: int) -> int:
    """Where the last `lines` lines of `text` begin (a line cut by the chunk's start counts as one)."""
    position = len(text.rstrip("\n"))
    for _ in range(lines):
        position = text.rfind("\n", 0, position)
        if position < 0:
            return 0
    return position + 1


@router.get("/pipelines/{pipeline_id}/steps/{step}/earlier", response_class=HTMLResponse)
async def earlier_lines(
    request: Request,
    pipeline_id: uuid.UUID,
    step: str,
    viewer: ViewerDep,
    before: Annotated[int, Query(ge=0, le=2**62)],
) -> Response:
    """The `TAIL_LINES` lines before byte `before` of a step's log, as a fragment to put above what is shown."""
    await _detail(request, viewer, pipeline_id)
    async with services(request).db.autocommit_session() as session:
        chunks = await queries.chunks_before(session, pipeline_id, step, before=before, min_bytes=TAIL_BYTES)
    html, start, _ = _render_window(chunks, TAIL_LINES)
    return render(request, "_earlier.html", viewer, html=html, start=start, pipeline_id=pipeline_id, step=step)


@router.get("/pipelines/{pipeline_id}/steps/{step}/raw")
async def raw_log(request: Request, pipeline_id: uuid.UUID, step: str, viewer: ViewerDep) -> Response:
    detail = await _detail(request, viewer, pipeline_id)
    if step not in {s.step.step_name for s in detail.steps}:
        raise NotFound(f"pipeline {pipeline_id} has no step {step!r}")
    async with services(request).db.autocommit_session() as session:
        text = "".join(chunk.content for chunk in await read_logs(session, pipeline_id, step=step))
    filename = f"{str(pipeline_id)[:8]}-{step}.log"
    return PlainTextResponse(text, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/pipelines/{pipeline_id}/live")
async def live(
    request: Request,
    pipeline_id: uuid.UUID,
    viewer: ViewerDep,
    after: str | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """The page's one stream: `log` events (`{step, html}`: rendered lines past the cursor), `state` events (the
    pipeline's and steps' statuses when they change) and a closing `end`. Each event's id is the cursor (per-step
    byte offsets), so a reconnect, with `Last-Event-ID` or `after=`, neither repeats nor loses a line."""
    await _detail(request, viewer, pipeline_id)
    # The API's resume tokens: `name:offset` pairs, ASCII digits that fit the offset column.
    cursor = LogCursor.parse(last_event_id or after).offsets
    return EventSourceResponse(_events(request, pipeline_id, cursor), ping=15)


async def _events(request: Request, pipeline_id: uuid.UUID, cursor: dict[str, int]) -> AsyncIterator[ServerSentEvent]:
    db = services(request).db
    renderers: dict[str, AnsiRenderer] = {}
    last_state: str | None = None
    while True:
        async with db.autocommit_session() as session:
            state = await queries.get_state(session, pipeline_id)
            chunks = await queries.chunks_after(session, pipeline_id, cursor)
            for name in cursor.keys() - renderers.keys():
                # A resumed stream starts mid-log: bring the colour state up to the cursor first.
                renderers[name] = AnsiRenderer()
                if cursor[name] > 0:
                    earlier = await queries.chunks_before(
                        session, pipeline_id, name, before=cursor[name], min_bytes=1 << 62
                    )
                    renderers[name].skip("".join(c.content for c in earlier))
        for chunk in chunks:
            renderer = renderers.setdefault(chunk.step, AnsiRenderer())
            cursor[chunk.step] = chunk.end
            token = ",".join(f"{name}:{offset}" for name, offset in cursor.items())
            yield ServerSentEvent(
                data=json.dumps({"step": chunk.step, "html": renderer.feed(chunk.content)}), event="log", id=token
            )
        snapshot = json.dumps({"status": state.status, "steps": dict(state.steps)})
        if snapshot != last_state:
            last_state = snapshot
            yield ServerSentEvent(data=snapshot, event="state")
        if state.finished:
            yield ServerSentEvent(data=json.dumps({"status": state.status}), event="end")
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(LIVE_POLL_SECONDS)


@router.post("/pipelines/{pipeline_id}/cancel")
async def cancel(request: Request, pipeline_id: uuid.UUID, viewer: DeveloperDep) -> Response:
    await _detail(request, viewer, pipeline_id)
    reason = f"canceled by {viewer.principal.subject} from the dashboard"
    async with services(request).db.transaction() as session:
        await service.cancel_pipeline(session, pipeline_id, reason=reason, actor=viewer.principal.subject)
    return RedirectResponse(f"/pipelines/{pipeline_id}", status_code=303)


@router.post("/pipelines/{pipeline_id}/retry")
async def retry(request: Request, pipeline_id: uuid.UUID, viewer: DeveloperDep) -> Response:
    return await _retry(request, pipeline_id, viewer, step=None)


@router.post("/pipelines/{pipeline_id}/steps/{step}/retry")
async def retry_step(request: Request, pipeline_id: uuid.UUID, step: str, viewer: DeveloperDep) -> Response:
    """Run the step again with the steps it needs and those that need it; the other successful steps are kept."""
    return await _retry(request, pipeline_id, viewer, step=step)


async def _retry(request: Request, pipeline_id: uuid.UUID, viewer: Viewer, *, step: str | None) -> Response:
    await _detail(request, viewer, pipeline_id)
    app = services(request)
    async with app.db.transaction() as session:
        pipeline = await service.retry_pipeline(
            session,
            pipeline_id,
            mirror=app.runtime.mirror,
            credentials=app.runtime.credentials,
            actor=viewer.principal.subject,
            step=step,
        )
    if app.wake_worker is not None:
        app.wake_worker()
    return RedirectResponse(f"/pipelines/{pipeline.id}", status_code=303)
