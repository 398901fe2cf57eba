"""What a closed pull request means for the task it was opened for: merged → the task is `done` and the tasks it made
ready are reported (and, with `loop`, get runs of their own); closed unmerged → the task is `pending` again, with a
note. Called in the transaction that processes the forge's event (webhooks, or the local forge's merge)."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.db.models import Project, PullRequest, Task, TaskDependency, WorkflowRun
from taskmaster.projects import settings as project_settings
from taskmaster.tasks import service as tasks
from taskmaster.workflows import service as runs
from taskmaster.workflows.codegen.service import run_request

log = structlog.stdlib.get_logger("taskmaster.workflows.codegen")

ACTOR = "codegen"


async def pull_request_closed(session: AsyncSession, project: Project, pull: PullRequest) -> dict[str, Any]:
    """Apply a closed (or merged) pull request to its task; returns what was done (empty when it has no task)."""
    if pull.task_id is None:
        return {}
    task = await session.get(Task, pull.task_id, populate_existing=True)
    if task is None:
        return {}
    origin = await _origin_run(session, task)
    if not pull.merged:
        if task.status not in ("review", "in_progress"):
            return {"task": task.number, "status": task.status}
        note = f"pull request #{pull.number} was closed without merging"
        task.extra = {**(task.extra or {}), "codegen": {**(task.extra or {}).get("codegen", {}), "note": note}}
        await tasks.set_status(session, task, "pending", actor=ACTOR)
        task.assignee = None
        log.info("task back to pending: its pull request was closed", task=task.number, pull_request=pull.number)
        return {"task": task.number, "status": "pending", "note": note}
    if task.status != "done":
        await tasks.set_status(session, task, "done", actor=ACTOR)
    dependents = set((await session.scalars(_dependents_of(task.id))).all())
    ready = [t for t in await tasks.ready_tasks(session, project, limit=1000) if t.id in dependents]
    numbers = [t.number for t in ready]
    log.info("task done: its pull request merged", task=task.number, pull_request=pull.number, newly_ready=numbers)
    done: dict[str, Any] = {"task": task.number, "status": "done", "ready": numbers}
    loop = project_settings.load(project.settings).codegen.loop or bool(origin and (origin.params or {}).get("loop"))
    if loop and ready:
        params = {key: (origin.params or {}).get(key) for key in ("agent", "agent_type", "agent_command")} if origin \
            else {}  # fmt: skip
        if not params.get("agent"):
            params["agent"] = project_settings.load(project.settings).codegen.agent
        started = []
        for item in ready:
            requested = await runs.request_run(session, run_request(project.id, item, params, True, ACTOR))
            started.append(str(requested.run.id))
        done["started"] = started
    if origin is not None:
        origin.result = {**(origin.result or {}), "merged": True, "newly_ready": numbers,
                         "started": done.get("started", [])}  # fmt: skip
    return done


def _dependents_of(task_id: uuid.UUID) -> Select[Any]:
    return select(TaskDependency.task_id).where(TaskDependency.depends_on_id == task_id)


async def _origin_run(session: AsyncSession, task: Task) -> WorkflowRun | None:
    run_id = (task.extra or {}).get("codegen", {}).get("run_id")
    if not run_id:
        return None
    try:
        return await session.get(WorkflowRun, uuid.UUID(str(run_id)))
    except ValueError:
        return None
