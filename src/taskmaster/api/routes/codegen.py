"""Code generation over REST: `POST /api/projects/{id}/codegen` requests runs (a worker runs them), and
`/api/codegen-runs…` lists, shows and cancels them. Field names are those of `taskmaster codegen … --json`.

Roles as for pipelines: a viewer reads, a developer starts and cancels; naming the agent's command line for a run
(`agent_command`) takes an admin, as setting `agent.command` does. A credential limited to a project sees only its
project's runs (another project's run answers 404 exactly as one that does not exist).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.api.deps import (
    Developer,
    PageOffset,
    ReadSessionDep,
    ScopedDeveloper,
    ScopedViewer,
    ServicesDep,
    SessionDep,
    hide_outside,
    project_filter,
)
from taskmaster.auth.schemas import Principal, Role
from taskmaster.core.errors import NotFound, PermissionDenied
from taskmaster.db.models import WorkflowRun
from taskmaster.projects.service import get_project
from taskmaster.workflows.base import RunStatus
from taskmaster.workflows.codegen import service
from taskmaster.workflows.codegen.run import KIND
from taskmaster.workflows.codegen.schemas import CodegenRequest, CodegenRunDetail, CodegenRunOut, CodegenStarted

router = APIRouter(tags=["codegen"])


class CodegenRunPage(BaseModel):
    """A page of runs, newest first, and how many match in all."""

    items: list[CodegenRunOut]
    total: int
    limit: int
    offset: int


@router.post("/api/projects/{project_id}/codegen", status_code=status.HTTP_202_ACCEPTED)
async def start(
    project_id: str,
    spec: CodegenRequest,
    read: ReadSessionDep,
    session: SessionDep,
    services: ServicesDep,
    principal: Developer,
) -> CodegenStarted:
    """Request one run per task: the named ones (each must be ready), or the next `next` ready ones. A task that
    is not ready, or an agent that is unknown or cannot run here, is a 422 naming it, and nothing is requested. A
    task that already has a live run gets that run back, not a second one. The worker runs them."""
    if spec.agent_command is not None and not principal.role.covers(Role.admin):
        raise PermissionDenied("agent_command takes the admin role (as the project setting agent.command does)")
    project = await get_project(read, project_id)
    started = await service.start(session, project.id, spec, actor=principal.subject, agents=services.runtime.agents)
    await session.commit()
    if services.wake_worker is not None:
        services.wake_worker()
    return started


@router.get("/api/codegen-runs")
async def list_runs(
    session: ReadSessionDep,
    principal: ScopedViewer,
    project: Annotated[str | None, Query(description="Only this project (id or name).")] = None,
    status_: Annotated[RunStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: PageOffset = 0,
) -> CodegenRunPage:
    """Runs, newest first (of its own project only, for a credential limited to one)."""
    project_id = await project_filter(session, principal, project)
    items = await service.list_runs(session, project_id=project_id, status=status_, limit=limit, offset=offset)
    query = select(func.count()).select_from(WorkflowRun).where(WorkflowRun.kind == KIND)
    if project_id is not None:
        query = query.where(WorkflowRun.project_id == project_id)
    if status_ is not None:
        query = query.where(WorkflowRun.status == status_)
    total = await session.scalar(query) or 0
    return CodegenRunPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/api/codegen-runs/{run_id}")
async def get_run(run_id: uuid.UUID, session: ReadSessionDep, principal: ScopedViewer) -> CodegenRunDetail:
    """The run with its stages' times, template version, transcript, summary, tokens and cost."""
    await _visible(session, run_id, principal)
    return await service.get_run(session, run_id)


@router.post("/api/codegen-runs/{run_id}/cancel")
async def cancel(
    run_id: uuid.UUID, read: ReadSessionDep, session: SessionDep, principal: ScopedDeveloper
) -> CodegenRunOut:
    """Cancel a live run (its worker stops the agent and removes what is half made); a finished run is returned
    as it is."""
    await _visible(read, run_id, principal)
    canceled = await service.cancel(session, run_id, actor=principal.subject)
    await session.commit()
    return canceled


async def _visible(session: AsyncSession, run_id: uuid.UUID, principal: Principal) -> None:
    """404, in the same words, when there is no such codegen run and when it lies outside a limited credential's
    project (another kind of workflow run is no codegen run either)."""
    missing = f"codegen run {run_id} does not exist"
    owner = await session.scalar(
        select(WorkflowRun.project_id).where(WorkflowRun.id == run_id, WorkflowRun.kind == KIND)
    )
    if owner is None:
        raise NotFound(missing)
    hide_outside(principal, owner, missing)
