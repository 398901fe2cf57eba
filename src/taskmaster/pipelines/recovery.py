"""Recovery as a state: a step that failed for its code waits in `awaiting_recovery` while a recovery run (a workflow
run, see `workflows.recovery`) decides, then becomes `retry_scheduled` (recovered) or `failed` (unrecovered)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.clock import utcnow
from taskmaster.db.models import PipelineStep
from taskmaster.pipelines import transitions
from taskmaster.pipelines.states import FailureReason, StepStatus


@dataclass(frozen=True, slots=True)
class RecoveryNeeded:
    """A step whose attempt failed for its code, with no rule retrying it and retries left."""

    pipeline_id: uuid.UUID
    step_id: uuid.UUID
    step_name: str
    attempt: int
    exit_code: int | None
    message: str | None
    log_tail: str


RecoveryHook = Callable[[AsyncSession, RecoveryNeeded], Awaitable[bool]]
"""Asked in the transaction that records the failed attempt: request a recovery run and return True (the step then
awaits its decision), or return False when the project has no recovery agent (the step fails, as without a hook).
It must not do network I/O: the transaction is open."""


async def resolve(
    session: AsyncSession, pipeline_id: uuid.UUID, step_name: str, *, recovered: bool, reason: str | None = None
) -> StepStatus | None:
    """Apply a recovery run's decision to a step awaiting it: `recovered` → `retry_scheduled` now (the engine runs
    it again at its next round, as a retry), else → `failed` with its attempt's outcome (and `reason` added).
    Returns the step's new status; None when the step no longer awaits recovery (the pipeline was canceled,
    timed out, or another decision came first). The caller owns the transaction."""
    step = await session.scalar(
        select(PipelineStep)
        .where(PipelineStep.pipeline_id == pipeline_id, PipelineStep.step_name == step_name)
        .execution_options(populate_existing=True)
    )
    if step is None or step.status != StepStatus.AWAITING_RECOVERY.value:
        return None
    now = utcnow()
    failure = FailureReason(step.failure_reason) if step.failure_reason else FailureReason.CODE
    message = step.error_message
    if recovered:
        step.retry_count += 1
        transitions.apply_step(
            step, transitions.RECOVERED, reason=message, failure_reason=failure, exit_code=step.exit_code, now=now
        )
        step.next_attempt_at = now
    else:
        if reason:
            message = f"{message}; {reason}" if message else reason
        transitions.apply_step(
            step, transitions.UNRECOVERED, reason=message, failure_reason=failure, exit_code=step.exit_code, now=now
        )
    return StepStatus(step.status)


async def resolve_fixed(
    session: AsyncSession, pipeline_id: uuid.UUID, step_name: str, *, passed: Iterable[str], reason: str
) -> bool:
    """A fix of the step awaiting recovery passed its trial: the step becomes `success` (rule `fixed`) and the steps
    in `passed` that have not started (they passed in the trial) too (`passed in trial`), so the engine ends the
    pipeline `success` at its next round. False when the step no longer awaits recovery. The caller owns the
    transaction."""
    steps = {
        row.step_name: row
        for row in await session.scalars(
            select(PipelineStep)
            .where(PipelineStep.pipeline_id == pipeline_id)
            .execution_options(populate_existing=True)
        )
    }
    step = steps.get(step_name)
    if step is None or step.status != StepStatus.AWAITING_RECOVERY.value:
        return False
    now = utcnow()
    transitions.apply_step(step, transitions.FIXED, reason=reason, now=now)
    for name in passed:
        row = steps.get(name)
        if row is not None and row.status in (StepStatus.PENDING.value, StepStatus.WAITING.value):
            transitions.apply_step(row, transitions.STEP_PASSED_IN_TRIAL, reason=reason, now=now)
    return True
