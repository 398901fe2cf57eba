"""Every pipeline, step and attempt status change, as named rules: one place that says which status may become which.

A rule names the statuses it applies to and the status it leads to. `apply` (pipelines) and `apply_step` (steps and
their attempts) refuse anything else and stamp the timings; a pipeline's final status, `finished_at`, `duration_ms`,
`error_message` and `failure_reason` are set exactly once (a finished pipeline never changes again).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.clock import as_utc, utcnow
from taskmaster.core.errors import Conflict
from taskmaster.db.models import Pipeline, PipelineStep, StepAttempt
from taskmaster.pipelines.states import FailureReason, PipelineStatus, StepStatus

LIVE = frozenset({PipelineStatus.PENDING, PipelineStatus.QUEUED, PipelineStatus.RUNNING})
"""A pipeline that has not finished: at most one per trigger (`uq_ci_cd_pipelines_live_trigger`)."""


@dataclass(frozen=True)
class Rule:
    name: str
    from_statuses: frozenset[PipelineStatus]
    to_status: PipelineStatus


@dataclass(frozen=True)
class StepRule:
    """A rule for a step or one of its attempts (attempts use the step statuses they can reach)."""

    name: str
    from_statuses: frozenset[StepStatus]
    to_status: StepStatus


# --- pipelines ---

SUPERSEDE = Rule("supersede", LIVE, PipelineStatus.CANCELED)
"""A newer commit on the same pull request replaces this pipeline; it is never reported red."""
CANCEL = Rule("cancel", LIVE, PipelineStatus.CANCELED)
"""Someone (or the pull request closing) stopped it."""
QUEUE = Rule("queue", frozenset({PipelineStatus.PENDING}), PipelineStatus.QUEUED)
"""Planned and handed to an engine."""
START = Rule("start", frozenset({PipelineStatus.QUEUED}), PipelineStatus.RUNNING)
"""An engine began running steps."""
SUCCEED = Rule("succeed", frozenset({PipelineStatus.RUNNING}), PipelineStatus.SUCCESS)
"""Every step finished and none failed (except with `allow_failure`)."""
FAIL = Rule("fail", frozenset({PipelineStatus.RUNNING}), PipelineStatus.FAILED)
"""Every step finished and a required one failed."""
ERROR = Rule("error", LIVE, PipelineStatus.ERROR)
"""It cannot run: an invalid `.taskmaster.yml`, an unknown built-in step, a plan that cannot be read."""
TIME_OUT = Rule("time out", frozenset({PipelineStatus.RUNNING}), PipelineStatus.TIMED_OUT)
"""It ran past the plan's overall timeout; its running steps are stopped."""
REAP = Rule("reaper", frozenset({PipelineStatus.RUNNING}), PipelineStatus.TIMED_OUT)
"""It has been `running` past the worker's hard limit (`worker.pipeline_max_seconds`): stuck, whatever its engine
is doing; its unfinished steps and attempts are canceled with it."""

# --- steps (and attempts) ---

_NOT_STARTED = frozenset({StepStatus.PENDING, StepStatus.WAITING})
_STARTABLE = _NOT_STARTED | {StepStatus.RETRY_SCHEDULED}
_RUNNING = frozenset({StepStatus.RUNNING})
_AWAITING = frozenset({StepStatus.AWAITING_RECOVERY})
_UNFINISHED = _STARTABLE | {StepStatus.QUEUED, StepStatus.RUNNING, StepStatus.AWAITING_RECOVERY}

STEP_START = StepRule("step start", _STARTABLE, StepStatus.RUNNING)
"""An attempt of the step begins (the first, or a scheduled retry)."""
STEP_SUCCEED = StepRule("step succeed", _RUNNING, StepStatus.SUCCESS)
STEP_FAIL = StepRule("step fail", _RUNNING, StepStatus.FAILED)
"""The attempt failed (`code` or `infra`) and no retry is left or allowed."""
STEP_TIME_OUT = StepRule("step time out", _RUNNING, StepStatus.TIMED_OUT)
"""The attempt ran past the step's timeout and no retry is left or allowed."""
STEP_ERROR = StepRule("step error", _UNFINISHED, StepStatus.ERROR)
"""The step cannot run at all (an unknown built-in step)."""
STEP_RETRY = StepRule("retry", _RUNNING, StepStatus.RETRY_SCHEDULED)
"""The attempt failed in a way `retry_on` allows and retries are left: another attempt at `next_attempt_at`."""
STEP_AWAIT_RECOVERY = StepRule("await recovery", _RUNNING, StepStatus.AWAITING_RECOVERY)
"""The attempt failed for its code, no rule retries it, retries are left and the project has a recovery agent: a
recovery run is requested (in the same transaction) and the step waits for its decision, holding no slot."""
RECOVERED = StepRule("recovered", _AWAITING, StepStatus.RETRY_SCHEDULED)
"""The recovery run fixed the cause: the step runs again at once."""
UNRECOVERED = StepRule("unrecovered", _AWAITING, StepStatus.FAILED)
"""The recovery run found no fix (or could not run): the step fails with its attempt's outcome."""
FIXED = StepRule("fixed", _AWAITING, StepStatus.SUCCESS)
"""The recovery run's fix passed its trial (and was pushed or suggested): the step counts as passed, the fix and its
trial pipeline recorded in `recovery_rounds`."""
STEP_PASSED_IN_TRIAL = StepRule("passed in trial", _NOT_STARTED, StepStatus.SUCCESS)
"""A step after a fixed one passed in the fix's trial pipeline: it does not run again at the broken commit."""
STEP_OUTSIDE_TRIAL = StepRule("outside trial", _NOT_STARTED, StepStatus.SKIPPED)
"""A trial pipeline runs only the failed step, the steps after it and the steps they need; the others are skipped."""
STEP_SKIP = StepRule("skip after failure", _NOT_STARTED, StepStatus.SKIPPED)
"""A need failed (or, for `on_failure` steps, nothing did): the step can no longer run."""
STEP_NOT_CONFIGURED = StepRule("not configured", _RUNNING, StepStatus.SKIPPED)
"""A built-in step whose service is not configured (AI review) is skipped with the reason."""
STEP_REUSE = StepRule("reuse", _NOT_STARTED, StepStatus.SUCCESS)
"""A retry of one step keeps a step that succeeded in the pipeline it retries and is not on that step's path: it
does not run again (its outcome is the earlier pipeline's, named in the reason)."""
STEP_CANCEL = StepRule("step cancel", _UNFINISHED, StepStatus.CANCELED)
"""The pipeline was canceled or timed out: running steps are stopped, the others never start."""

ATTEMPT_SUCCEED = StepRule("attempt succeed", _RUNNING, StepStatus.SUCCESS)
ATTEMPT_FAIL = StepRule("attempt fail", _RUNNING, StepStatus.FAILED)
ATTEMPT_TIME_OUT = StepRule("attempt time out", _RUNNING, StepStatus.TIMED_OUT)
ATTEMPT_CANCEL = StepRule("attempt cancel", _RUNNING, StepStatus.CANCELED)
ATTEMPT_SKIP = StepRule("attempt skip", _RUNNING, StepStatus.SKIPPED)
AGENT_LOST = StepRule("agent lost", _RUNNING, StepStatus.FAILED)
"""An attempt left `running` by an engine that died: failed as `infra`, so the step is retried by the usual rules."""


def apply(
    pipeline: Pipeline,
    rule: Rule,
    *,
    reason: str | None = None,
    failure_reason: FailureReason | None = None,
    now: datetime | None = None,
) -> None:
    """Move `pipeline` by `rule`; raises `Conflict` when the rule does not apply to its current status.

    `START` stamps `started_at`; a rule to a final status stamps `finished_at`, `duration_ms`, `error_message`
    (`reason`) and `failure_reason`.
    """
    current = PipelineStatus(pipeline.status)
    if current not in rule.from_statuses:
        raise Conflict(f"pipeline {pipeline.id} is {current.value}: '{rule.name}' does not apply")
    now = now or utcnow()
    pipeline.status = rule.to_status.value
    if rule is START:
        pipeline.started_at = now
    if rule.to_status.is_terminal:
        pipeline.finished_at = now
        if pipeline.started_at is not None:
            pipeline.duration_ms = _ms(pipeline.started_at, now)
        pipeline.error_message = reason
        pipeline.failure_reason = failure_reason.value if failure_reason is not None else None


def apply_step(
    row: PipelineStep | StepAttempt,
    rule: StepRule,
    *,
    reason: str | None = None,
    failure_reason: FailureReason | None = None,
    exit_code: int | None = None,
    now: datetime | None = None,
) -> None:
    """Move a step or an attempt by `rule`; raises `Conflict` when it does not apply.

    Starting stamps `started_at` (a step's first start only) and clears the last outcome; a final status stamps
    `finished_at`, `duration_ms`, `error_message`, `failure_reason` and `exit_code`; a scheduled retry keeps the
    failed attempt's outcome on the step, so that it shows why it is being retried.
    """
    current = StepStatus(row.status)
    if current not in rule.from_statuses:
        kind = "step" if isinstance(row, PipelineStep) else "attempt"
        raise Conflict(f"{kind} {row.id} is {current.value}: '{rule.name}' does not apply")
    now = now or utcnow()
    row.status = rule.to_status.value
    if rule.to_status is StepStatus.RUNNING:
        # A step's own timings span all its attempts (backoff included); each attempt has its own.
        if isinstance(row, StepAttempt) or row.started_at is None:
            row.started_at = now
        row.finished_at = None
        row.duration_ms = None
        row.exit_code = None
        row.failure_reason = None
        row.error_message = None
        if isinstance(row, PipelineStep):
            row.next_attempt_at = None
        return
    if rule.to_status.is_terminal or rule.to_status in _KEEPS_OUTCOME:
        row.exit_code = exit_code
        row.error_message = reason
        row.failure_reason = failure_reason.value if failure_reason is not None else None
    if rule.to_status.is_terminal:
        row.finished_at = now
        row.duration_ms = _ms(row.started_at, now) if row.started_at is not None else None


_KEEPS_OUTCOME = frozenset({StepStatus.RETRY_SCHEDULED, StepStatus.AWAITING_RECOVERY})


def cancel_unfinished(rows: Iterable[PipelineStep | StepAttempt], *, reason: str, now: datetime | None = None) -> bool:
    """Cancel every step or attempt in `rows` that has not finished (the pipeline ended under it); True if any."""
    changed = False
    for row in rows:
        if not StepStatus(row.status).is_terminal:
            rule = STEP_CANCEL if isinstance(row, PipelineStep) else ATTEMPT_CANCEL
            apply_step(row, rule, reason=reason, now=now)
            changed = True
    return changed


async def end_with_steps(
    session: AsyncSession,
    pipeline: Pipeline,
    rule: Rule,
    *,
    reason: str,
    step_reason: str,
    failure_reason: FailureReason | None = None,
    now: datetime | None = None,
) -> None:
    """End a pipeline no engine will finish (stuck, or its run interrupted) by `rule`, with every step and attempt
    it left unfinished canceled for `step_reason`. An engine still running it sees the end and stops its steps;
    their late outcomes are then ignored (their attempts are no longer `running`)."""
    now = now or utcnow()
    apply(pipeline, rule, reason=reason, failure_reason=failure_reason, now=now)
    steps = (await session.scalars(select(PipelineStep).where(PipelineStep.pipeline_id == pipeline.id))).all()
    attempts = await session.scalars(
        select(StepAttempt).where(
            StepAttempt.step_id.in_([step.id for step in steps]), StepAttempt.status == StepStatus.RUNNING.value
        )
    )
    cancel_unfinished(attempts.all(), reason=step_reason, now=now)
    cancel_unfinished(steps, reason=step_reason, now=now)


def _ms(start: datetime, end: datetime) -> int:
    return int((as_utc(end) - as_utc(start)).total_seconds() * 1000)
