"""Code-generation use cases the doors call: start runs for tasks, list, show and cancel them. The caller owns the
transaction; the runs themselves are `codegen` workflow runs a worker claims (see `workflows.codegen.run`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, get_args

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.audit import service as audit
from taskmaster.core.clock import utcnow
from taskmaster.core.errors import InvalidInput, NotFound
from taskmaster.db.models import PullRequest, Task, WorkflowRun, WorkflowStep
from taskmaster.tasks import service as tasks
from taskmaster.workflows import service as runs
from taskmaster.workflows.base import LIVE_RUN_STATUSES
from taskmaster.workflows.codegen.agents import AgentRegistry, choose, default_agents
from taskmaster.workflows.codegen.run import KIND, trigger_subject
from taskmaster.workflows.codegen.schemas import (
    CodegenRequest,
    CodegenRunDetail,
    CodegenRunOut,
    CodegenStage,
    CodegenStarted,
    StageTime,
)

STAGES: tuple[str, ...] = get_args(CodegenStage)


async def start(
    session: AsyncSession,
    project_id: uuid.UUID,
    request: CodegenRequest,
    *,
    actor: str,
    agents: AgentRegistry | None = None,
) -> CodegenStarted:
    """Request one run per task: the named tasks (each must be ready: `InvalidInput` naming the ones that are not,
    and nothing is requested), or the next `request.next` ready ones (`InvalidInput` when none is ready). An unknown
    agent or one that cannot run here is `AgentNotConfigured` before anything is requested. Audited.

    `agents`: the process's agent registry (the runtime's); default: the built-in agents only."""
    project = await tasks.lock_project(session, project_id)
    choice = choose(project, agent=request.agent, agent_type=request.agent_type, agent_command=request.agent_command)
    (agents or default_agents()).check(project, choice)
    chosen: list[Task] = []
    if request.tasks:
        chosen = await _named_tasks(session, project.id, list(dict.fromkeys(request.tasks)))
        live = await _live_runs(session, project.id, chosen)
        ready = await tasks.ready_among(session, project, [task.id for task in chosen if task.id not in live])
        not_ready = [f"#{t.number} ({t.status})" for t in chosen if t.id not in live and t.id not in ready]
        if not_ready:
            raise InvalidInput(
                f"not ready for code generation in project {project.name}: {', '.join(not_ready)}; a task is ready "
                "when it is pending and every task it depends on is done"
            )
    else:
        wanted = request.next or 1
        candidates = await tasks.ready_tasks(session, project, limit=wanted + 100)
        live = await _live_runs(session, project.id, candidates)
        chosen = [task for task in candidates if task.id not in live][:wanted]
        if not chosen:
            raise InvalidInput(f"no task of project {project.name} is ready for code generation")
    requested = await runs.request_runs(
        session, [run_request(project.id, task, choice.as_params(), request.loop, actor) for task in chosen]
    )
    made = [item.run for item in requested]
    await session.flush()
    await audit.record(
        session, actor=actor, action="codegen.start", target_type="project", target_id=project.id,
        project_id=project.id, data={"tasks": [t.number for t in chosen], "agent": choice.kind,
                                     "runs": [str(r.id) for r in made]},
    )  # fmt: skip
    return CodegenStarted(runs=await _outs(session, made))


def run_request(
    project_id: uuid.UUID, task: Task, agent_params: dict[str, Any], loop: bool, actor: str
) -> runs.RunRequest:
    """The workflow-run request of one task's code generation."""
    return runs.RunRequest(
        project_id=project_id, kind=KIND, subject=trigger_subject(task.id), trigger_event="codegen",
        params={"task_id": str(task.id), "task_number": task.number, "loop": loop, "actor": actor, **agent_params},
    )  # fmt: skip


async def _named_tasks(session: AsyncSession, project_id: uuid.UUID, numbers: list[int]) -> list[Task]:
    """The project's tasks of these numbers, in their order; a number out of range or missing is `tasks.get_task`'s
    error."""
    for number in numbers:
        if not 0 < number <= tasks.MAX_TASK_NUMBER:  # PostgreSQL would fail the whole statement on it
            await tasks.get_task(session, project_id, number)
    rows = await session.scalars(select(Task).where(Task.project_id == project_id, Task.number.in_(numbers)))
    by_number = {task.number: task for task in rows.all()}
    for number in numbers:
        if number not in by_number:
            await tasks.get_task(session, project_id, number)  # raises: out of range, or no such task
    return [by_number[number] for number in numbers]


async def _live_runs(session: AsyncSession, project_id: uuid.UUID, among: Sequence[Task]) -> set[uuid.UUID]:
    """Which of the tasks have a live code-generation run."""
    if not among:
        return set()
    keys = {f"{KIND}:{trigger_subject(task.id)}": task.id for task in among}
    found = await session.scalars(
        select(WorkflowRun.trigger_key).where(
            WorkflowRun.project_id == project_id, WorkflowRun.trigger_key.in_(keys),
            WorkflowRun.status.in_(LIVE_RUN_STATUSES),
        )
    )  # fmt: skip
    return {keys[key] for key in found.all()}


async def list_runs(
    session: AsyncSession,
    *,
    project_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[CodegenRunOut]:
    """Runs, newest first."""
    query = select(WorkflowRun).where(WorkflowRun.kind == KIND)
    if project_id is not None:
        query = query.where(WorkflowRun.project_id == project_id)
    if status is not None:
        query = query.where(WorkflowRun.status == status)
    query = query.order_by(WorkflowRun.created_at.desc(), WorkflowRun.id.desc()).limit(limit).offset(offset)
    return await _outs(session, list((await session.scalars(query)).all()))


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> CodegenRunDetail:
    """One run; `NotFound` when there is none."""
    run = await _codegen_run(session, run_id)
    steps = await _steps(session, [run.id])
    out = (await _outs(session, [run], steps))[0]
    mine = {step.name: step for step in steps.get(run.id, [])}
    agent = mine["agent"].output if "agent" in mine else {}
    prompt = mine["prompt"].output if "prompt" in mine else {}
    stages = [
        StageTime(
            stage=step.name,
            started_at=step.started_at,
            finished_at=step.finished_at,
            duration_ms=int((step.finished_at - step.started_at).total_seconds() * 1000) if step.finished_at else None,
        )
        for step in steps.get(run.id, [])
        if step.name in STAGES
    ]
    return CodegenRunDetail(
        **out.model_dump(),
        template=prompt.get("template"),
        stages=stages,
        summary=agent.get("summary"),
        transcript=agent.get("transcript"),
        input_tokens=agent.get("input_tokens"),
        output_tokens=agent.get("output_tokens"),
        cost_usd=agent.get("cost_usd"),
        attempts=run.attempts,
    )


async def cancel(session: AsyncSession, run_id: uuid.UUID, *, actor: str) -> CodegenRunOut:
    """Cancel a live run (its worker stops the agent and undoes what is half made); a finished run is returned as
    it is. Audited."""
    run = await _codegen_run(session, run_id)
    if run.status in LIVE_RUN_STATUSES:
        run.status = "canceled"
        run.error_message = f"canceled by {actor}"
        run.finished_at = utcnow()
        if run.worker_id is None:
            run.result = {**(run.result or {}), "stage": "queued", "reason": "canceled"}
        await session.flush()
        await audit.record(
            session, actor=actor, action="codegen.cancel", target_type="workflow_run", target_id=run.id,
            project_id=run.project_id, data={"task_number": (run.params or {}).get("task_number")},
        )  # fmt: skip
    return (await _outs(session, [run]))[0]


async def _codegen_run(session: AsyncSession, run_id: uuid.UUID) -> WorkflowRun:
    run = await session.get(WorkflowRun, run_id, populate_existing=True)
    if run is None or run.kind != KIND:
        raise NotFound(f"code-generation run {run_id} does not exist")
    return run


async def _steps(session: AsyncSession, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[WorkflowStep]]:
    found: dict[uuid.UUID, list[WorkflowStep]] = {}
    if not run_ids:
        return found
    rows = await session.scalars(
        select(WorkflowStep).where(WorkflowStep.run_id.in_(run_ids)).order_by(WorkflowStep.started_at)
    )
    for row in rows.all():
        found.setdefault(row.run_id, []).append(row)
    return found


async def _outs(
    session: AsyncSession, made: Sequence[WorkflowRun], steps: dict[uuid.UUID, list[WorkflowStep]] | None = None
) -> list[CodegenRunOut]:
    steps = steps if steps is not None else await _steps(session, [run.id for run in made])
    task_ids = {uuid.UUID(str(run.params["task_id"])) for run in made if (run.params or {}).get("task_id")}
    titles: dict[uuid.UUID, str] = {}
    if task_ids:
        rows = await session.execute(select(Task.id, Task.title).where(Task.id.in_(task_ids)))
        titles = {task_id: title for task_id, title in rows}
    return [_out(run, steps.get(run.id, []), titles) for run in made]


def _out(run: WorkflowRun, steps: list[WorkflowStep], titles: dict[uuid.UUID, str]) -> CodegenRunOut:
    params, result = run.params or {}, run.result or {}
    by_name = {step.name: step for step in steps}
    started = [step.name for step in steps if step.name in STAGES]
    if run.status == "succeeded":
        stage = "done"
    elif result.get("stage") in STAGES:
        stage = result["stage"]
    else:
        stage = started[-1] if started else "queued"
    pull = by_name["pull_request"].output if "pull_request" in by_name else {}
    agent = by_name["agent"].output.get("agent") if "agent" in by_name else None
    claim = by_name["claim"].output if "claim" in by_name else {}
    task_id = uuid.UUID(str(params["task_id"])) if params.get("task_id") else None
    return CodegenRunOut(
        id=run.id,
        project_id=run.project_id,
        task_number=int(params.get("task_number") or 0),
        task_title=titles.get(task_id, "") if task_id else "",
        status=run.status,
        stage=stage,
        agent=str(agent or params.get("agent") or "offline"),
        branch=result.get("branch") or pull.get("branch") or claim.get("branch"),
        pull_request_number=result.get("pull_request_number") or pull.get("number"),
        pull_request_url=result.get("pull_request_url") or pull.get("url"),
        error=run.error_message,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


async def agent_run_of_pull_request(session: AsyncSession, pull_request_id: uuid.UUID) -> str | None:
    """The external id of the agent run that made this pull request (a Codegen run id), when a code-generation
    run of its task recorded one; None otherwise. Recovery continues that run rather than starting another."""
    task_id = await session.scalar(select(PullRequest.task_id).where(PullRequest.id == pull_request_id))
    if task_id is None:
        return None
    query = (
        select(WorkflowRun.params, WorkflowStep.output)
        .join(WorkflowRun, WorkflowRun.id == WorkflowStep.run_id)
        .where(
            WorkflowRun.kind == KIND,
            WorkflowRun.trigger_key == f"{KIND}:{trigger_subject(task_id)}",
            WorkflowStep.name.in_(("agent", "agent_started")),
        )
        .order_by(WorkflowRun.created_at.desc())
    )
    for params, output in await session.execute(query):
        external = (output or {}).get("external_id")
        if external and (params or {}).get("agent") == "codegen":
            return str(external)
    return None
