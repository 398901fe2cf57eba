"""Code-generation pages: runs with their stage, agent, branch and pull request; one run with its stage times,
tokens, cost and transcript; start runs for tasks picked on the tasks page; cancel a live run."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from taskmaster.core.errors import InvalidInput, NotFound
from taskmaster.projects.service import get_project, list_projects
from taskmaster.web.deps import DeveloperDep, ViewerDep, services
from taskmaster.web.pages import PageRoute, render
from taskmaster.workflows.codegen import service
from taskmaster.workflows.codegen.schemas import CodegenRequest

router = APIRouter(route_class=PageRoute, include_in_schema=False)

RUN_STATUSES = ("pending", "running", "succeeded", "failed", "canceled")
AGENTS = ("offline", "agentapi", "codegen")


@router.get("/codegen", response_class=HTMLResponse)
async def run_list(
    request: Request, viewer: ViewerDep, project: str | None = None, status: str | None = None
) -> Response:
    if status and status not in RUN_STATUSES:
        raise InvalidInput(f"unknown run status {status!r}: one of {', '.join(RUN_STATUSES)}")
    async with services(request).db.autocommit_session() as session:
        projects = [p for p in await list_projects(session) if viewer.sees(p.id)]
        chosen = None
        if project:
            chosen = await get_project(session, project)
            viewer.check_visible(chosen.id, f"project {project!r} does not exist")
        runs = await service.list_runs(
            session, project_id=chosen.id if chosen else None, status=status or None, limit=200
        )
    visible = [run for run in runs if viewer.sees(run.project_id)]
    names = {p.id: p.name for p in projects}
    return render(
        request, "codegen.html", viewer, runs=visible, names=names, projects=projects, project=chosen,
        status=status, statuses=RUN_STATUSES,
    )  # fmt: skip


@router.get("/codegen/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, viewer: ViewerDep, run_id: uuid.UUID) -> Response:
    async with services(request).db.autocommit_session() as session:
        run = await service.get_run(session, run_id)
        viewer.check_visible(run.project_id, f"code-generation run {run_id} does not exist")
        project = await get_project(session, str(run.project_id))
    return render(request, "codegen_run.html", viewer, run=run, project=project)


@router.post("/codegen/start")
async def start_runs(
    request: Request,
    viewer: DeveloperDep,
    project: Annotated[str, Form(min_length=1)],
    task: Annotated[list[int] | None, Form()] = None,
    agent: Annotated[str, Form()] = "",
) -> Response:
    """Start one run per picked task, with the project's agent unless the form names another."""
    if not task:
        raise InvalidInput("pick at least one ready task to generate code for")
    if agent and agent not in AGENTS:
        raise InvalidInput(f"unknown agent {agent!r}: one of {', '.join(AGENTS)}")
    request_body = CodegenRequest(tasks=task, agent=agent or None)
    app = services(request)
    async with app.db.transaction() as session:
        chosen = await get_project(session, project)
        viewer.check_visible(chosen.id, f"project {project!r} does not exist")
        started = await service.start(
            session, chosen.id, request_body, actor=viewer.principal.subject, agents=app.runtime.agents
        )
    if len(started.runs) == 1:
        return RedirectResponse(f"/codegen/{started.runs[0].id}", status_code=303)
    return RedirectResponse(f"/codegen?project={chosen.name}", status_code=303)


@router.post("/codegen/{run_id}/cancel")
async def cancel_run(request: Request, viewer: DeveloperDep, run_id: uuid.UUID) -> Response:
    async with services(request).db.transaction() as session:
        run = await service.get_run(session, run_id)
        if not viewer.sees(run.project_id):
            raise NotFound(f"code-generation run {run_id} does not exist")
        await service.cancel(session, run_id, actor=viewer.principal.subject)
    return RedirectResponse(f"/codegen/{run_id}", status_code=303)
