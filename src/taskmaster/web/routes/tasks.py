"""Task pages: a project's tasks with filters and the dependency graph (critical path marked), one task with its
dependencies and pull requests, a PRD uploaded into tasks, and status changes."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from taskmaster.core.errors import InvalidInput
from taskmaster.db.models import Project, PullRequest, Task
from taskmaster.projects.service import get_project, list_projects
from taskmaster.tasks import service
from taskmaster.tasks.planner.formats import read_prd
from taskmaster.tasks.prd import parse_into_project
from taskmaster.tasks.schemas import TASK_STATUSES
from taskmaster.web import svg
from taskmaster.web.deps import DeveloperDep, Viewer, ViewerDep, services
from taskmaster.web.pages import PageRoute, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

MAX_PRD_BYTES = 5 * 1024 * 1024
GRAPH_LIMIT = 300
"""Above this many tasks the graph is not drawn (the table still lists them)."""


async def _project(request: Request, viewer: Viewer, ref: str | None) -> tuple[Project | None, list[Project]]:
    async with services(request).db.autocommit_session() as session:
        projects = [p for p in await list_projects(session) if viewer.sees(p.id)]
        if ref is None:
            return (projects[0] if len(projects) == 1 else None), projects
        project = await get_project(session, ref)
    viewer.check_visible(project.id, f"project {ref!r} does not exist")
    return project, projects


@router.get("/tasks", response_class=HTMLResponse)
async def task_list(
    request: Request, viewer: ViewerDep, project: str | None = None, status: str | None = None
) -> Response:
    if status and status not in TASK_STATUSES:
        raise InvalidInput(f"unknown task status {status!r}: one of {', '.join(TASK_STATUSES)}")
    chosen, projects = await _project(request, viewer, project)
    tasks: list[Task] = []
    ready: set[int] = set()
    if chosen is not None:
        async with services(request).db.autocommit_session() as session:
            where = service.TaskFilter(status=status) if status else None
            tasks, _ = await service.list_tasks(session, chosen.id, where=where, limit=5000)
            ready = {t.number for t in await service.ready_tasks(session, chosen, limit=5000)}
    picture = _graph(tasks, ready) if chosen is not None and len(tasks) <= GRAPH_LIMIT else ""
    return render(
        request, "tasks.html", viewer, project=chosen, projects=projects, tasks=tasks, ready=ready,
        graph=picture, statuses=TASK_STATUSES, status=status, numbers={str(t.id): t.number for t in tasks},
    )  # fmt: skip


def _graph(tasks: list[Task], ready: set[int]) -> str:
    numbers = {str(t.id): str(t.number) for t in tasks}

    def state(task: Task) -> str:
        if task.number in ready:
            return "ready"
        if task.status == "pending":
            return "blocked-by-deps"
        return task.status

    def needs(task: Task) -> tuple[str, ...]:
        return tuple(numbers[d] for d in map(str, task.dependencies) if d in numbers)

    nodes = [
        svg.Node(str(t.number), f"#{t.number} {t.title}", needs(t), state(t), href=f"#task-{t.number}") for t in tasks
    ]
    path = svg.critical_path(nodes, frozenset({"ready", "blocked-by-deps", "in_progress", "review", "blocked"}))
    marked = [svg.Node(n.key, n.label, n.needs, n.state, href=n.href, marked=n.key in path) for n in nodes]
    return svg.graph(marked, title="Task dependencies; the critical path is drawn thicker")


@router.get("/tasks/{project}/{number}", response_class=HTMLResponse)
async def task_page(request: Request, project: str, number: int, viewer: ViewerDep) -> Response:
    chosen, _ = await _project(request, viewer, project)
    assert chosen is not None
    async with services(request).db.autocommit_session() as session:
        task = await service.get_task(session, chosen.id, number)
        ids = [uuid.UUID(str(d)) for d in task.dependencies]
        by_number = select(Task).where(Task.project_id == chosen.id, Task.id.in_(ids)).order_by(Task.number)
        dependencies = list(await session.scalars(by_number)) if ids else []
        dependents = [
            t
            for t in await session.scalars(select(Task).where(Task.project_id == chosen.id))
            if str(task.id) in map(str, t.dependencies)
        ]
        subtasks = list(await session.scalars(select(Task).where(Task.parent_task_id == task.id).order_by(Task.number)))
        pulls = list(await session.scalars(select(PullRequest).where(PullRequest.task_id == task.id)))
    return render(
        request, "task.html", viewer, project=chosen, task=task, dependencies=dependencies, dependents=dependents,
        subtasks=subtasks, pulls=pulls, statuses=TASK_STATUSES,
    )  # fmt: skip


@router.post("/tasks/{project}/{number}/status")
async def change_status(
    request: Request,
    project: str,
    number: int,
    viewer: DeveloperDep,
    status: Annotated[str, Form()],
) -> Response:
    if status not in TASK_STATUSES:
        raise InvalidInput(f"unknown task status {status!r}: one of {', '.join(TASK_STATUSES)}")
    chosen, _ = await _project(request, viewer, project)
    assert chosen is not None
    async with services(request).db.transaction() as session:
        task = await service.get_task(session, chosen.id, number)
        await service.set_status(session, task, status, actor=viewer.principal.subject)
    return RedirectResponse(f"/tasks/{chosen.name}/{number}", status_code=303)


@router.post("/tasks/prd")
async def upload_prd(
    request: Request,
    viewer: DeveloperDep,
    project: Annotated[str, Form(min_length=1)],
    file: Annotated[UploadFile, File()],
    provider: Annotated[Literal["offline", "anthropic", "openai", "ollama"], Form()] = "offline",
    existing: Annotated[Literal["refuse", "append", "replace"], Form()] = "refuse",
) -> Response:
    """Parse a PRD into the project's tasks; parsing one the project already holds is refused unless the form
    says to append to or replace its tasks."""
    chosen, _ = await _project(request, viewer, project)
    assert chosen is not None
    raw = await file.read(MAX_PRD_BYTES + 1)
    if len(raw) > MAX_PRD_BYTES:
        raise InvalidInput(f"the PRD is larger than {MAX_PRD_BYTES // (1024 * 1024)} MiB")
    text = read_prd(raw, file.filename or "prd.md")
    app = services(request)
    async with app.runtime.llm(provider) as llm:
        await parse_into_project(
            app.db, chosen.id, text, model=llm, replace=existing == "replace", append=existing == "append",
            source=file.filename, actor=viewer.principal.subject,
            prices=app.runtime.settings.costs.prices,
        )  # fmt: skip
    return RedirectResponse(f"/tasks?project={chosen.name}", status_code=303)
