"""The `recovery` workflow: a step that failed for its code waits (`awaiting_recovery`) while a `RecoveryHandler`
looks for a fix (`service.DebugRecovery`: debug rounds, trials, push or suggest, the issue for a person); the run
applies its decision through the named transitions (`fixed`, `recovered`, `unrecovered`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.db.models import Pipeline, Project, RecoveryRound
from taskmaster.db.session import Database
from taskmaster.pipelines import recovery as pipeline_recovery
from taskmaster.pipelines.recovery import RecoveryNeeded
from taskmaster.pipelines.states import StepStatus
from taskmaster.workflows.base import RunInput, RunResult
from taskmaster.workflows.service import RunRequest, request_run

log = structlog.stdlib.get_logger("taskmaster.workflows.recovery")

KIND = "recovery"
AGENT_SETTING = "recovery.agent"
"""The project setting naming its recovery agent; "off" (the default) or absent: no recovery runs."""


@dataclass(frozen=True, slots=True)
class RecoveryRequest:
    """What a recovery agent is asked about: the failed step of a pipeline (or, for `/taskmaster fix`, the pull
    request's head, with no step), the log tail, and which try of the run this is."""

    project_id: uuid.UUID
    pipeline_id: uuid.UUID | None
    step_name: str | None
    commit_sha: str | None
    log_tail: str
    attempt: int
    run_id: uuid.UUID | None = None
    """The workflow run asking (recorded with every round and AI call)."""


@dataclass(frozen=True, slots=True)
class RecoveryDecision:
    """`fixed`: a fix passed its trial (pushed or suggested): the step and the steps in `passed` count as passed;
    `recovered`: the cause went away, run the step again; `unrecovered`: no fix (`detail` says why; `issue_url` is
    the issue opened for a person, if any)."""

    decision: Literal["fixed", "recovered", "unrecovered"]
    detail: str | None = None
    passed: tuple[str, ...] = ()
    issue_url: str | None = None


class RecoveryHandler(Protocol):
    """A recovery agent. Errors: an exception counts as `unrecovered` with its message; it is never retried by the
    workflow itself (the step's own retries are spent by `recovered`)."""

    async def recover(self, request: RecoveryRequest) -> RecoveryDecision: ...


class RecoveryWorkflow:
    """Runs `handler` (none: `unrecovered`, "no recovery agent is configured") and applies its decision to the step:
    `fixed → success` (with the steps that passed in the fix's trial), `recovered → retry`, `unrecovered → failed`.
    The handler opens the issue for a person itself (`service.DebugRecovery`); the result names it (`issue_url`)."""

    name = KIND

    def __init__(self, handler: RecoveryHandler | None = None) -> None:
        self.handler = handler

    async def run(self, db: Database, run: RunInput) -> RunResult:
        decision = await self._decide(run)
        applied: str | None = None
        if run.pipeline_id is not None and run.step_name is not None:
            async with db.transaction() as session:
                if decision.decision == "fixed":
                    fixed = await pipeline_recovery.resolve_fixed(
                        session, run.pipeline_id, run.step_name, passed=decision.passed, reason=decision.detail or ""
                    )
                    applied = StepStatus.SUCCESS.value if fixed else None
                else:
                    status = await pipeline_recovery.resolve(
                        session,
                        run.pipeline_id,
                        run.step_name,
                        recovered=decision.decision == "recovered",
                        reason=decision.detail if decision.decision == "unrecovered" else None,
                    )
                    applied = status.value if status is not None else None
        result: dict[str, Any] = {
            "decision": decision.decision,
            "detail": decision.detail,
            "step_status": applied,
            "open_issue": decision.decision == "unrecovered",
            "issue_url": decision.issue_url,
        }
        return RunResult("succeeded", result)

    async def _decide(self, run: RunInput) -> RecoveryDecision:
        if self.handler is None:
            return RecoveryDecision("unrecovered", "no recovery agent is configured")
        request = RecoveryRequest(
            project_id=run.project_id,
            pipeline_id=run.pipeline_id,
            step_name=run.step_name,
            commit_sha=run.commit_sha,
            log_tail=str(run.params.get("log_tail", "")),
            attempt=run.attempt,
            run_id=run.run_id,
        )
        try:
            return await self.handler.recover(request)
        except Exception as exc:  # the agent is hostile or broken: its failure is a decision, never a crash
            log.warning("recovery agent failed", run_id=str(run.run_id), error=str(exc))
            return RecoveryDecision("unrecovered", f"the recovery agent failed: {exc}"[:500])


async def is_recorded_fix(session: AsyncSession, commit_sha: str) -> bool:
    """Whether `commit_sha` is a fix commit a recovery round made (whether or not it was pushed yet)."""
    found = await session.scalar(select(RecoveryRound.id).where(RecoveryRound.fix_sha == commit_sha).limit(1))
    return found is not None


def recovery_agent(project: Project) -> str:
    """The project's recovery agent setting ("off" when unset), read as a dotted key or a nested table."""
    settings: dict[str, Any] = project.settings or {}
    value = settings.get(AGENT_SETTING)
    if value is None and isinstance(settings.get("recovery"), dict):
        value = settings["recovery"].get("agent")
    return str(value or "off")


async def request_recovery(session: AsyncSession, needed: RecoveryNeeded) -> bool:
    """The engine's recovery hook (`pipelines.recovery.RecoveryHook`): request a recovery run for the step when
    its project has a recovery agent; False (the step fails) when it has none, for a recovery trial, and for the
    pipeline of a fix Taskmaster made (its commit is a recorded fix or carries the `Taskmaster-Fix` trailer's
    record): a fix is validated as it stands and never starts another recovery."""
    pipeline = await session.get(Pipeline, needed.pipeline_id)
    project = await session.get(Project, pipeline.project_id) if pipeline is not None else None
    if pipeline is None or project is None or recovery_agent(project) == "off" or pipeline.trial_of is not None:
        return False
    if pipeline.commit_sha and await is_recorded_fix(session, pipeline.commit_sha):
        return False
    await request_run(
        session,
        RunRequest(
            project_id=project.id,
            kind=KIND,
            subject=f"{needed.pipeline_id}:{needed.step_name}:{needed.attempt}",
            pipeline_id=needed.pipeline_id,
            step_name=needed.step_name,
            commit_sha=pipeline.commit_sha,
            pull_request_id=pipeline.pull_request_id,
            params={"log_tail": needed.log_tail, "message": needed.message, "exit_code": needed.exit_code},
            trigger_event="pipeline:step failed",
        ),
    )
    return True
