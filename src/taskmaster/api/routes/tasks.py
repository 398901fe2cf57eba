"""/api/projects/{project_id}/tasks: the task graph, ready set, next task and atomic claim.

`{project_id}` is the project's id or name; `{task_ref}` is a task's id or its number in the project.
Lists return summaries unless `details=true`, so an agent's context is not flooded.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from taskmaster.api.deps import Developer, PageOffset, ReadSessionDep, ServicesDep, SessionDep, Viewer
from taskmaster.tasks import refine, service
from taskmaster.tasks.schemas import (
    ClaimRequest,
    ComplexityOut,
    DependencyAdd,
    ExpandRequest,
    Finding,
    GraphReportOut,
    RefineRequest,
    StatusChange,
    TaskCreate,
    TaskOut,
    TaskPage,
    TaskStatus,
    TaskSummary,
    TaskType,
    TaskUpdate,
)

router = APIRouter(prefix="/api/projects/{project_id}/tasks", tags=["tasks"])


def _render(tasks: list[Any], details: bool) -> list[TaskOut] | list[TaskSummary]:
    return [service.to_out(t) for t in tasks] if details else [service.to_summary(t) for t in tasks]


@router.get("")
async def list_tasks(
    project_id: str,
    session: ReadSessionDep,
    _: Viewer,
    status_: Annotated[TaskStatus | None, Query(alias="status")] = None,
    type_: Annotated[TaskType | None, Query(alias="type")] = None,
    assignee: str | None = None,
    top_level: bool = False,
    details: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: PageOffset = 0,
) -> TaskPage:
    project = await service.get_project(session, project_id)
    where = service.TaskFilter(status=status_, type=type_, assignee=assignee, top_level=top_level)
    tasks, total = await service.list_tasks(session, project.id, where=where, limit=limit, offset=offset)
    return TaskPage(items=_render(tasks, details), total=total, limit=limit, offset=offset)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_task(project_id: str, spec: TaskCreate, session: SessionDep, principal: Developer) -> TaskOut:
    project = await service.lock_project(session, project_id)
    task = await service.create_task(session, project=project, spec=spec, actor=principal.subject)
    await session.commit()
    return service.to_out(task)


@router.get("/ready")
async def ready_tasks(
    project_id: str,
    session: ReadSessionDep,
    _: Viewer,
    type_: Annotated[TaskType | None, Query(alias="type")] = None,
    assignee: str | None = None,
    details: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[TaskOut] | list[TaskSummary]:
    project = await service.get_project(session, project_id)
    where = service.TaskFilter(type=type_, assignee=assignee)
    return _render(await service.ready_tasks(session, project, where=where, limit=limit), details)


@router.get("/next")
async def next_task(
    project_id: str,
    session: ReadSessionDep,
    _: Viewer,
    type_: Annotated[TaskType | None, Query(alias="type")] = None,
    assignee: str | None = None,
) -> TaskOut | None:
    """The task to work on next, or null when nothing is ready."""
    project = await service.get_project(session, project_id)
    task = await service.next_task(session, project, where=service.TaskFilter(type=type_, assignee=assignee))
    return None if task is None else service.to_out(task)


@router.post("/claim")
async def claim_task(project_id: str, spec: ClaimRequest, session: SessionDep, _: Developer) -> TaskOut | None:
    """Atomically take the next ready task for `assignee` with a lease; null when nothing is ready."""
    task = await service.claim_task(
        session,
        project_id,
        assignee=spec.assignee,
        lease=timedelta(seconds=spec.lease_seconds),
        where=service.TaskFilter(type=spec.type),
    )
    await session.commit()
    return None if task is None else service.to_out(task)


def _report(report: service.GraphReport) -> GraphReportOut:
    return GraphReportOut(
        ok=not report.findings,
        tasks=report.tasks,
        dependencies=report.dependencies,
        findings=[Finding(**vars(f)) for f in report.findings],
    )


@router.get("/validate")
async def validate_dependencies(project_id: str, session: ReadSessionDep, _: Viewer) -> GraphReportOut:
    """Self, missing, duplicate and circular dependencies across all levels; `ok` is false when any is found."""
    return _report(await service.validate_graph(session, await service.get_project(session, project_id)))


@router.post("/fix")
async def fix_dependencies(project_id: str, session: SessionDep, principal: Developer) -> GraphReportOut:
    """Remove what validate finds (the fewest edges that break each cycle); `findings` lists each removal."""
    project = await service.lock_project(session, project_id)
    report = await service.fix_graph(session, project, actor=principal.subject)
    await session.commit()
    return _report(report)


@router.post("/analyze-complexity")
async def analyze_complexity(
    project_id: str, spec: RefineRequest, services: ServicesDep, principal: Developer
) -> list[ComplexityOut]:
    """Score every open task 1-10 (offline or by an LLM) and store the scores with their reasoning."""
    async with services.runtime.llm(spec.provider, spec.model) as model:
        scores = await refine.analyze_complexity(services.db, project_id, model=model, actor=principal.subject)
    return [ComplexityOut(**vars(score)) for score in scores]


@router.post("/{task_ref}/expand", status_code=status.HTTP_201_CREATED)
async def expand_task(
    project_id: str, task_ref: str, spec: ExpandRequest, services: ServicesDep, principal: Developer
) -> list[TaskSummary]:
    """Break a task into at most `num` subtasks (from its details offline, or by an LLM)."""
    async with services.runtime.llm(spec.provider, spec.model) as model:
        created = await refine.expand_task(
            services.db,
            project_id,
            task_ref,
            model=model,
            num=spec.num,
            actor=principal.subject,
            prices=services.runtime.settings.costs.prices,
        )
    return [service.to_summary(t) for t in created]


@router.get("/{task_ref}")
async def get_task(project_id: str, task_ref: str, session: ReadSessionDep, _: Viewer) -> TaskOut:
    project = await service.get_project(session, project_id)
    return service.to_out(await service.get_task(session, project.id, task_ref))


@router.patch("/{task_ref}")
async def update_task(
    project_id: str, task_ref: str, spec: TaskUpdate, session: SessionDep, principal: Developer
) -> TaskOut:
    project = await service.lock_project(session, project_id)
    task = await service.get_task(session, project.id, task_ref)
    await service.update_task(session, task, spec, actor=principal.subject)
    await session.commit()
    return service.to_out(task)


@router.post("/{task_ref}/status")
async def set_status(
    project_id: str, task_ref: str, change: StatusChange, session: SessionDep, principal: Developer
) -> list[TaskSummary]:
    """Change the status; returns every task that changed (with `cascade`, the subtasks too)."""
    project = await service.lock_project(session, project_id)
    task = await service.get_task(session, project.id, task_ref)
    changed = await service.set_status(session, task, change.status, cascade=change.cascade, actor=principal.subject)
    await session.commit()
    return [service.to_summary(t) for t in changed]


@router.delete("/{task_ref}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_task(
    project_id: str, task_ref: str, session: SessionDep, principal: Developer, force: bool = False
) -> None:
    project = await service.lock_project(session, project_id)
    task = await service.get_task(session, project.id, task_ref)
    await service.delete_task(session, task, force=force, actor=principal.subject)
    await session.commit()


@router.post("/{task_ref}/dependencies", status_code=status.HTTP_201_CREATED)
async def add_dependency(
    project_id: str, task_ref: str, spec: DependencyAdd, session: SessionDep, principal: Developer
) -> TaskOut:
    project = await service.lock_project(session, project_id)
    task = await service.get_task(session, project.id, task_ref)
    depends_on = await service.get_task(session, project.id, spec.depends_on)
    await service.add_dependency(session, task, depends_on, actor=principal.subject)
    await session.commit()
    return service.to_out(task)


@router.delete("/{task_ref}/dependencies/{depends_on_ref}")
async def remove_dependency(
    project_id: str, task_ref: str, depends_on_ref: str, session: SessionDep, principal: Developer
) -> TaskOut:
    project = await service.lock_project(session, project_id)
    task = await service.get_task(session, project.id, task_ref)
    depends_on = await service.get_task(session, project.id, depends_on_ref)
    await service.remove_dependency(session, task, depends_on, actor=principal.subject)
    await session.commit()
    return service.to_out(task)
