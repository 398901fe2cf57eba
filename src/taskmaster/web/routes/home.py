"""The home page: projects, live and recent pipelines, ready tasks, workers; a first-run guide on a fresh install."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from taskmaster.db.models import Pipeline, Worker
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.projects.service import list_projects
from taskmaster.tasks.service import ready_tasks
from taskmaster.web.deps import DeveloperDep, ViewerDep, services
from taskmaster.web.pages import PageRoute, render
from taskmaster.workflows.demo import create_demo

router = APIRouter(route_class=PageRoute, include_in_schema=False)

LIVE = [s.value for s in PipelineStatus if not s.is_terminal]


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, viewer: ViewerDep) -> Response:
    async with services(request).db.autocommit_session() as session:
        projects = [p for p in await list_projects(session) if viewer.sees(p.id)]
        mine = [p.id for p in projects]
        pipelines = select(Pipeline).where(Pipeline.project_id.in_(mine)).order_by(Pipeline.created_at.desc())
        live = list(await session.scalars(pipelines.where(Pipeline.status.in_(LIVE)).limit(20)))
        recent = list(await session.scalars(pipelines.where(Pipeline.status.not_in(LIVE)).limit(10)))
        ready = [(project, task) for project in projects for task in await ready_tasks(session, project, limit=5)]
        workers = list(await session.scalars(select(Worker).order_by(Worker.last_heartbeat_at.desc()).limit(20)))
    names = {p.id: p.name for p in projects}
    return render(
        request, "home.html", viewer, projects=projects, live=live, recent=recent, ready=ready, workers=workers,
        names=names,
    )  # fmt: skip


@router.post("/demo")
async def make_demo(request: Request, viewer: DeveloperDep) -> Response:
    """The first-run view's button: the same demo as `taskmaster demo`, then its pipeline's page."""
    app = services(request)
    runtime = app.runtime
    result = await create_demo(
        app.settings, app.db, mirror=runtime.mirror, credentials=runtime.credentials, actor=viewer.principal.subject
    )
    if app.wake_worker is not None:
        app.wake_worker()
    return RedirectResponse(f"/pipelines/{result.pipeline_id}", status_code=303)
