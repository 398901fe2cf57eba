"""One attempt of one step: run it at the pipeline's site (a shell command through the executor, or a built-in step),
stream its output into the step's log, and record how it ended through the named transitions.

The engine (`pipelines.engine`) decides which attempts start and when; this module runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.backoff import Backoff
from taskmaster.core.clock import utcnow
from taskmaster.core.outcomes import FailureReason, Outcome
from taskmaster.db.models import Pipeline, PipelineStep, StepAttempt
from taskmaster.db.session import Database
from taskmaster.executors.base import StepSpec
from taskmaster.pipelines import transitions
from taskmaster.pipelines.builtins import BuiltinRun, BuiltinStep
from taskmaster.pipelines.definition import StepKind, WorkspaceMode
from taskmaster.pipelines.logs import LogWriter
from taskmaster.pipelines.plan import PlannedStep
from taskmaster.pipelines.recovery import RecoveryHook, RecoveryNeeded
from taskmaster.pipelines.sites import Site
from taskmaster.pipelines.states import PipelineStatus, StepStatus
from taskmaster.workspaces.errors import SandboxUnavailable, WorkspaceError

SHARED_WORKSPACE = "shared"


@dataclass(frozen=True, slots=True)
class Launch:
    """What an attempt needs from its step, taken from the round that started it (no second read)."""

    step_id: uuid.UUID
    planned: PlannedStep
    attempt: int
    log_offset: int
    """Where the attempt's output starts in the step's log (past earlier attempts' output)."""


@dataclass
class PipelineContext:
    """What the attempts of one pipeline share, read from the database before they start."""

    pipeline_id: uuid.UUID
    repository: str
    sha: str
    token: str | None
    secrets: list[str]
    site: Site
    limit_maxima: Mapping[str, int] = field(default_factory=dict)
    """The project's own maxima for what a step asks in `limits:` (project setting `limits.*`)."""
    checkout_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    shared_ready: bool = False


class AttemptRunner:
    """Runs attempts and records their outcomes. `builtins` are the steps written `uses: <name>`; `grace` is the
    time a stopped step gets between SIGTERM and SIGKILL; output beyond `log_max_bytes` is not kept; `secrets`
    are masked in every log besides each project's own."""

    def __init__(
        self,
        db: Database,
        builtins: Mapping[str, BuiltinStep],
        *,
        backoff: Backoff,
        grace: float,
        log_max_bytes: int,
        secrets: list[str],
        recovery: RecoveryHook | None = None,
    ) -> None:
        self.db = db
        self.builtins = builtins
        self.backoff = backoff
        self.grace = grace
        self.log_max_bytes = log_max_bytes
        self.secrets = secrets
        self.recovery = recovery

    async def run(self, context: PipelineContext, launch: Launch, stop: asyncio.Event | None) -> tuple[Outcome, str]:
        """Run the attempt (its row already `running`) and return how it ended with the tail of its log."""
        async with LogWriter(
            self.db,
            launch.step_id,
            launch.attempt,
            start_offset=launch.log_offset,
            start_seq=0,  # a new attempt: no chunk of it is stored yet
            secrets=[*context.secrets, *self.secrets],
            max_bytes=self.log_max_bytes,
        ) as writer:
            try:
                outcome = await self._execute(context, launch.planned, launch.attempt, writer, stop)
            except WorkspaceError as exc:
                await writer.write(f"{exc.detail}\n".encode())
                outcome = Outcome.infra(exc.detail)
            except SandboxUnavailable as exc:  # a configuration error: nothing ran, retrying cannot help
                await writer.write(f"{exc.detail}\n".encode())
                outcome = Outcome.cannot_run(exc.detail)
            return outcome, writer.tail

    async def _execute(
        self,
        context: PipelineContext,
        planned: PlannedStep,
        attempt: int,
        writer: LogWriter,
        stop: asyncio.Event | None,
    ) -> Outcome:
        if planned.kind is StepKind.USES:
            builtin = self.builtins.get(planned.uses or "")
            if builtin is None:
                return Outcome.cannot_run(f"unknown built-in step {planned.uses!r}")
            run = BuiltinRun(
                pipeline_id=context.pipeline_id,
                step=planned.name,
                attempt=attempt,
                sha=context.sha,
                workspace=context.site.path(SHARED_WORKSPACE),
                write=writer.write,
                checkout=lambda: self._checkout_shared(context),
                params=planned.params,
            )
            ended = await until_stopped(builtin.run(run), stop)
            return ended if ended is not None else Outcome.stopped(reason="stopped")
        assert planned.command is not None
        for key, value in planned.limits.items():
            most = context.limit_maxima.get(key)
            if most is not None and value > most:
                return Outcome.cannot_run(
                    f"the step asks for limits.{key} = {value}, above this project's maximum {most} "
                    f"(project setting limits.{key}): ask for less, or raise the project's maximum"
                )
        if planned.workspace is WorkspaceMode.FRESH:
            workspace = f"{planned.name}-{attempt}"
            prepared = await until_stopped(self._checkout(context, workspace), stop)
        else:
            workspace = SHARED_WORKSPACE
            prepared = await until_stopped(self._shared_workspace(context), stop)
        if prepared is not None:
            return prepared
        spec = StepSpec(
            command=planned.command,
            workdir=context.site.path(workspace),
            env={
                **planned.env,
                "CI": "true",
                "TASKMASTER": "1",
                "TASKMASTER_PIPELINE_ID": str(context.pipeline_id),
                "TASKMASTER_STEP": planned.name,
                "TASKMASTER_ATTEMPT": str(attempt),
                "TASKMASTER_COMMIT_SHA": context.sha,
            },
            network=planned.network,
            limits=planned.limits,
            timeout=float(planned.timeout),
            grace=self.grace,
            max_output_bytes=self.log_max_bytes,  # the log keeps no more: the executor need not pass more on
        )
        return await context.site.executor.run(spec, on_output=writer.write, cancel=stop)

    async def _checkout_shared(self, context: PipelineContext) -> None:
        async with context.checkout_lock:
            await self._checkout(context, SHARED_WORKSPACE)
            context.shared_ready = True

    async def _shared_workspace(self, context: PipelineContext) -> None:
        """Check out the shared workspace if no `checkout` step did (a plan without one, or a resumed engine)."""
        if context.shared_ready:
            return
        async with context.checkout_lock:
            if not context.shared_ready:  # a resumed engine checks out again: the files may be half written
                await self._checkout(context, SHARED_WORKSPACE)
            context.shared_ready = True

    async def _checkout(self, context: PipelineContext, name: str) -> None:
        await context.site.checkout(name, context.repository, context.sha, token=context.token)

    async def record(
        self, step_id: uuid.UUID, planned: PlannedStep, number: int, outcome: Outcome, *, log_tail: str = ""
    ) -> StepStatus:
        """Record how attempt `number` ended, and what its step does next (succeed, retry, await recovery, fail);
        the step's new status. An attempt recorded meanwhile (as lost, by another engine) is left as it is."""
        async with self.db.single_writer(), self.db.transaction() as session:
            step, attempt = (
                await session.execute(
                    select(PipelineStep, StepAttempt)
                    .join(StepAttempt, StepAttempt.step_id == PipelineStep.id)
                    .where(PipelineStep.id == step_id, StepAttempt.attempt == number)
                    .execution_options(populate_existing=True)
                )
            ).one()
            if attempt.status != StepStatus.RUNNING.value:
                return StepStatus(step.status)
            now = utcnow()
            message, code = describe(outcome, planned), outcome.exit_code
            status = outcome.status
            if status == "success":
                transitions.apply_step(attempt, transitions.ATTEMPT_SUCCEED, exit_code=code, now=now)
                transitions.apply_step(step, transitions.STEP_SUCCEED, exit_code=code, now=now)
            elif status == "skipped":
                transitions.apply_step(attempt, transitions.ATTEMPT_SKIP, reason=message, now=now)
                transitions.apply_step(step, transitions.STEP_NOT_CONFIGURED, reason=message, now=now)
            elif status == "canceled":
                pipeline = await session.get(Pipeline, step.pipeline_id)
                timed_out = pipeline is not None and pipeline.status == PipelineStatus.TIMED_OUT.value
                why = "stopped: the pipeline timed out" if timed_out else "canceled"
                transitions.apply_step(attempt, transitions.ATTEMPT_CANCEL, reason=why, exit_code=code, now=now)
                transitions.apply_step(step, transitions.STEP_CANCEL, reason=why, exit_code=code, now=now)
            elif status == "error":
                transitions.apply_step(attempt, transitions.ATTEMPT_FAIL, reason=message, now=now)
                transitions.apply_step(step, transitions.STEP_ERROR, reason=message, now=now)
            else:
                reason = outcome.failure_reason or FailureReason.CODE
                rule = transitions.ATTEMPT_TIME_OUT if status == "timed_out" else transitions.ATTEMPT_FAIL
                transitions.apply_step(attempt, rule, reason=message, failure_reason=reason, exit_code=code, now=now)
                if status == "failed" and await self._recovery_requested(
                    session, step, planned, number, outcome, log_tail
                ):
                    transitions.apply_step(
                        step, transitions.STEP_AWAIT_RECOVERY, reason=message, failure_reason=reason, exit_code=code
                    )
                else:
                    after_failure(step, planned, reason, code, message, backoff=self.backoff)
            return StepStatus(step.status)

    async def _recovery_requested(
        self,
        session: AsyncSession,
        step: PipelineStep,
        planned: PlannedStep,
        number: int,
        outcome: Outcome,
        log_tail: str,
    ) -> bool:
        """Whether a recovery run now decides the step's fate: a code failure no rule retries, with retries left,
        in a project with a recovery agent (the hook requests the run in this transaction)."""
        if self.recovery is None or outcome.failure_reason not in (None, FailureReason.CODE):
            return False
        if planned.retry_on.allows(FailureReason.CODE, outcome.exit_code) or step.retry_count >= step.max_retries:
            return False
        needed = RecoveryNeeded(
            pipeline_id=step.pipeline_id,
            step_id=step.id,
            step_name=step.step_name,
            attempt=number,
            exit_code=outcome.exit_code,
            message=describe(outcome, planned),
            log_tail=log_tail,
        )
        return await self.recovery(session, needed)


def describe(outcome: Outcome, planned: PlannedStep) -> str | None:
    """The one line an attempt's row and its step keep about how it ended (None on success)."""
    status = outcome.status
    if status == "success":
        return None
    if status == "canceled":
        return "stopped"
    if status == "timed_out":
        return f"timed out after {planned.timeout} s"
    if status != "failed" or outcome.failure_reason is FailureReason.INFRA:
        return outcome.reason
    message = f"exit code {outcome.exit_code}"
    if outcome.reason and outcome.reason != message:  # e.g. "limit: processes"; an SSH instance says the same
        message += f" ({outcome.reason})"
    return message


def after_failure(
    step: PipelineStep,
    planned: PlannedStep,
    reason: FailureReason,
    exit_code: int | None,
    message: str | None,
    *,
    backoff: Backoff,
) -> None:
    """A running step whose attempt failed: schedule a retry if its rules allow one, else fail it."""
    now = utcnow()
    if planned.retry_on.allows(reason, exit_code) and step.retry_count < step.max_retries:
        step.retry_count += 1
        delay = backoff.delay(step.retry_count)
        transitions.apply_step(
            step, transitions.STEP_RETRY, reason=message, failure_reason=reason, exit_code=exit_code, now=now
        )
        step.next_attempt_at = now + timedelta(seconds=delay)
        return
    rule = transitions.STEP_TIME_OUT if reason is FailureReason.TIMEOUT else transitions.STEP_FAIL
    transitions.apply_step(step, rule, reason=message, failure_reason=reason, exit_code=exit_code, now=now)


async def until_stopped(work: Awaitable[Outcome | None], stop: asyncio.Event | None) -> Outcome | None:
    """Await `work`, abandoning it (cancelled, so it cleans up) when `stop` is set first."""
    task = asyncio.ensure_future(work)
    if stop is None:
        return await task
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return Outcome.stopped(reason="stopped")
