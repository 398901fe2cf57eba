"""The `recovery` workflow: a step that failed for its code waits (`awaiting_recovery`) while a recovery agent looks
for a fix; the run applies the decision through the named transitions and decides whether a person must look.

The agent itself is a `RecoveryHandler` (the real one comes with the recovery agents; a project without one gets
`unrecovered` at once, which fails the step as if no recovery were configured).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.db.models import Pipeline, Project
from taskmaster.db.session import Database
from taskmaster.pipelines import recovery as pipeline_recovery
from taskmaster.pipelines.recovery import RecoveryNeeded
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


@dataclass(frozen=True, slots=True)
class RecoveryDecision:
    """`recovered`: a fix was applied, run the step again; `unrecovered`: no fix (`detail` says why)."""

    decision: Literal["recovered", "unrecovered"]
    detail: str | None = None


class RecoveryHandler(Protocol):
    """A recovery agent. Errors: an exception counts as `unrecovered` with its message; it is never retried by the
    workflow itself (the step's own retries are spent by `recovered`)."""

    async def recover(self, request: RecoveryRequest) -> RecoveryDecision: ...


class RecoveryWorkflow:
    """Runs `handler` (none: `unrecovered`, "no recovery agent is configured") and applies its decision to the step:
    `recovered → retry`, `unrecovered → failed`. The result says whether an issue for a person should be opened
    (`open_issue`: unrecovered); the forge report acts on the pipeline's end."""

    name = KIND

    def __init__(self, handler: RecoveryHandler | None = None) -> None:
        self.handler = handler

    async def run(self, db: Database, run: RunInput) -> RunResult:
        decision = await self._decide(run)
        applied: str | None = None
        if run.pipeline_id is not None and run.step_name is not None:
            async with db.transaction() as session:
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
        )
        try:
            return await self.handler.recover(request)
        except Exception as exc:  # the agent is hostile or broken: its failure is a decision, never a crash
            log.warning("recovery agent failed", run_id=str(run.run_id), error=str(exc))
            return RecoveryDecision("unrecovered", f"the recovery agent failed: {exc}"[:500])


def recovery_agent(project: Project) -> str:
    """The project's recovery agent setting ("off" when unset), read as a dotted key or a nested table."""
    settings: dict[str, Any] = project.settings or {}
    value = settings.get(AGENT_SETTING)
    if value is None and isinstance(settings.get("recovery"), dict):
        value = settings["recovery"].get("agent")
    return str(value or "off")


async def request_recovery(session: AsyncSession, needed: RecoveryNeeded) -> bool:
    """The engine's recovery hook (`pipelines.recovery.RecoveryHook`): request a recovery run for the step when
    its project has a recovery agent; False (the step fails) when it has none."""
    pipeline = await session.get(Pipeline, needed.pipeline_id)
    project = await session.get(Project, pipeline.project_id) if pipeline is not None else None
    if pipeline is None or project is None or recovery_agent(project) == "off":
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
