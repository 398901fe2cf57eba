"""Code-generation use cases the doors call: start runs for tasks, list, show and cancel them. The caller owns the
transaction; the runs themselves are `codegen` workflow runs a worker claims (see `workflows.codegen.run`)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.workflows.codegen.schemas import CodegenRequest, CodegenRunDetail, CodegenRunOut, CodegenStarted

KIND = "codegen"


async def start(session: AsyncSession, project_id: uuid.UUID, request: CodegenRequest, *, actor: str) -> CodegenStarted:
    """Request one run per task: the named tasks (each must be ready: `InvalidInput` naming the ones that are not,
    and nothing is requested), or the next `request.next` ready ones (`InvalidInput` when none is ready). An unknown
    agent or one that cannot run here is `AgentNotConfigured` before anything is requested. Audited."""
    raise NotImplementedError


async def list_runs(
    session: AsyncSession,
    *,
    project_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[CodegenRunOut]:
    """Runs, newest first."""
    raise NotImplementedError


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> CodegenRunDetail:
    """One run; `NotFound` when there is none."""
    raise NotImplementedError


async def cancel(session: AsyncSession, run_id: uuid.UUID, *, actor: str) -> CodegenRunOut:
    """Cancel a live run (its worker stops the agent and undoes what is half made); a finished run is returned as
    it is. Audited."""
    raise NotImplementedError
