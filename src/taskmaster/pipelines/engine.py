"""The pipeline engine: drives one pipeline's steps to the end in this process, from and into the database.

Every decision is made from database state (step statuses, attempts, `next_attempt_at`, the pipeline row), so an
engine that dies loses nothing: `run()` on the same pipeline, here or in another worker that took it over (see
`pipelines.leases`), resumes it. This module schedules (rounds, slots, timeouts, the end of a pipeline); running and
recording one attempt is `pipelines.attempts`; built-in steps are `pipelines.builtins`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.config import Settings
from taskmaster.core.backoff import Backoff as Backoff
from taskmaster.core.clock import as_utc, utcnow
from taskmaster.core.errors import Conflict, InvalidInput, NotFound, TaskmasterError
from taskmaster.db.models import Pipeline, PipelineStep, Project, StepAttempt
from taskmaster.db.session import Database
from taskmaster.executors.base import Executor
from taskmaster.pipelines import transitions
from taskmaster.pipelines.attempts import AttemptRunner, Launch, PipelineContext, after_failure
from taskmaster.pipelines.builtins import DEFAULT_BUILTINS, BuiltinStep
from taskmaster.pipelines.leases import Lease
from taskmaster.pipelines.logs import log_end, log_tail
from taskmaster.pipelines.plan import Plan, PlannedStep, has_failure, is_finished, ready_steps, steps_to_skip
from taskmaster.pipelines.recovery import RecoveryHook
from taskmaster.pipelines.runs import plan_pipeline
from taskmaster.pipelines.sites import LocalSites, Sites
from taskmaster.pipelines.slots import StepSlots
from taskmaster.pipelines.states import FailureReason, PipelineStatus, StepStatus
from taskmaster.projects import settings as project_settings
from taskmaster.projects.credentials import Credentials
from taskmaster.workspaces.git_cache import MirrorCache

log = structlog.stdlib.get_logger("taskmaster.pipelines.engine")

OnChange = Callable[[uuid.UUID], Awaitable[None]]

AGENT_LOST = "agent lost"


class LeaseLost(Conflict):
    """This engine may no longer run the pipeline: another worker took it over, or this worker's heartbeat has not
    reached the database for too long (it must presume it was taken over). Its steps were stopped."""


class PipelineEngine:
    """Runs pipelines in this process: ready steps in parallel as asyncio tasks, up to the plan's concurrency and,
    over all its pipelines, `max_steps` (`StepSlots`). Each attempt is run and recorded by `AttemptRunner`
    (`pipelines.attempts`); steps written `uses: <name>` are the `builtins` registry's (`pipelines.builtins`).

    `on_change(pipeline_id)` is awaited after every committed status change (errors in it are logged, never
    raised). `recovery` is asked, while a step's failed attempt is recorded, whether a recovery run decides its
    fate (`pipelines.recovery`): the step then awaits it, holding no slot; without one the step fails.
    `backoff`, `poll_seconds` and `grace` exist so that tests stay fast. Many pipelines may run on one engine at
    once; `cancel` works from any process.

    The engine owns the pipelines it runs (`worker_id`, see `pipelines.leases`): it stops their steps and raises
    `LeaseLost` when another worker takes one over or when `lease` (this worker's heartbeat) lapses.
    A pipeline runs at one site (`pipelines.sites`): `sites` hands them out; by default this machine, with
    checkouts from `mirror` and steps through `executor` (the `Executor` protocol), itself by default this
    machine's sandbox with other pipelines' workspaces, the mirrors and the state directory hidden from the step.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        mirror: MirrorCache,
        *,
        on_change: OnChange | None = None,
        recovery: RecoveryHook | None = None,
        backoff: Backoff = Backoff(),
        concurrency: int | None = None,
        max_steps: int | None = None,
        keep_workspace: bool = False,
        poll_seconds: float = 0.5,
        grace: float = 5.0,
        executor: Executor | None = None,
        sites: Sites | None = None,
        log_max_bytes: int = 4 * 1024 * 1024,
        secrets: Iterable[str] = (),
        worker_id: str | None = None,
        lease: Lease | None = None,
        credentials: Credentials | None = None,
        builtins: Mapping[str, BuiltinStep] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.mirror = mirror
        self.on_change = on_change
        self.backoff = backoff
        self.concurrency = concurrency
        self.max_steps = max_steps or settings.worker.max_steps
        self.slots = StepSlots(self.max_steps)
        self.keep_workspace = keep_workspace
        self.poll_seconds = poll_seconds
        self.grace = grace
        self.sites: Sites = sites or LocalSites.of(settings, mirror, executor)
        self.log_max_bytes = log_max_bytes
        self.secrets = list(secrets)
        self.worker_id = worker_id or settings.worker.id or f"{socket.gethostname()}:{os.getpid()}"
        self.lease = lease
        self._contexts: dict[uuid.UUID, PipelineContext] = {}
        self._fenced: set[uuid.UUID] = set()
        """Pipelines whose steps this engine stopped because it lost them: their outcomes are not recorded."""
        self.credentials = credentials or Credentials.from_settings(settings)
        self.attempts = AttemptRunner(
            db,
            builtins if builtins is not None else DEFAULT_BUILTINS,
            backoff=backoff,
            grace=grace,
            log_max_bytes=log_max_bytes,
            secrets=self.secrets,
            recovery=recovery,
        )

    # --- the pipeline ---

    async def run(self, pipeline_id: uuid.UUID) -> PipelineStatus:
        """Drive the pipeline to a final status and return it (at once if it has one already).

        Plans a webhook-requested pipeline first; resumes one left `running` by an engine that died (its running
        attempts fail as `infra`, "agent lost", and are retried by the usual rules).
        """
        prepared = await self._prepare(pipeline_id)
        if isinstance(prepared, PipelineStatus):
            await self._changed(pipeline_id)
            return prepared
        plan, context = prepared
        self._contexts[pipeline_id] = context
        try:
            return await self._drive(plan, context)
        finally:
            self._contexts.pop(pipeline_id, None)
            if not self.keep_workspace:
                await context.site.clean()

    async def cancel(self, pipeline_id: uuid.UUID, *, reason: str = "canceled by request") -> PipelineStatus:
        """Cancel a live pipeline; an engine running it (in any process) stops its steps within a poll."""
        async with self.db.transaction() as session:
            pipeline = await cancel_pipeline(session, pipeline_id, reason=reason)
            status = PipelineStatus(pipeline.status)
        await self._changed(pipeline_id)
        return status

    async def abandon(self, pipeline_id: uuid.UUID, *, reason: str) -> None:
        """Cancel a pipeline whose `run()` on this engine was interrupted (Ctrl-C): the pipeline, and every step and
        attempt it left unfinished, since no engine will finish them. Does nothing to a pipeline that has ended."""
        async with self.db.transaction() as session:
            pipeline = await _get_pipeline(session, pipeline_id)
            if PipelineStatus(pipeline.status).is_terminal:
                return
            await transitions.end_with_steps(session, pipeline, transitions.CANCEL, reason=reason, step_reason=reason)
        await self._changed(pipeline_id)

    async def _prepare(self, pipeline_id: uuid.UUID) -> PipelineStatus | tuple[Plan, PipelineContext]:
        # Three parts, so that no transaction stays open during network I/O (a row lock on PostgreSQL, SQLite's
        # write lock): take the pipeline; fetch the repository to plan it, if it has no plan yet; plan and start.
        async with self.db.transaction() as session:
            pipeline = await self._own(session, pipeline_id)
            if PipelineStatus(pipeline.status).is_terminal:
                return PipelineStatus(pipeline.status)
            project = await _get_project(session, pipeline)
        token, _ = self._project_secrets(project)
        unplanned = pipeline.status == PipelineStatus.PENDING.value and not pipeline.definition
        fetch_failed: str | None = None
        if unplanned:
            try:
                await self.mirror.ensure(project.repository, token=token)
            except (TaskmasterError, OSError) as exc:  # e.g. the repository cannot be fetched
                fetch_failed = exc.detail if isinstance(exc, TaskmasterError) else str(exc)
        async with self.db.transaction() as session:
            pipeline = await self._own(session, pipeline_id)
            status = await self._plan_and_start(session, pipeline, fetch_failed)
            if isinstance(status, PipelineStatus):
                return status
            plan = status
        context = await self._context(pipeline, project)  # a remote site may be asked first: outside any transaction
        await self._changed(pipeline_id)
        return plan, context

    async def _own(self, session: AsyncSession, pipeline_id: uuid.UUID) -> Pipeline:
        """The pipeline, owned by this engine from now on if nobody owns it; `LeaseLost` if another engine does."""
        pipeline = await _get_pipeline(session, pipeline_id)
        if PipelineStatus(pipeline.status).is_terminal:
            return pipeline
        if pipeline.worker_id is None:
            pipeline.worker_id = self.worker_id
        elif pipeline.worker_id != self.worker_id:
            raise LeaseLost(f"pipeline {pipeline_id} is run by worker {pipeline.worker_id}")
        return pipeline

    async def _plan_and_start(
        self, session: AsyncSession, pipeline: Pipeline, fetch_failed: str | None
    ) -> PipelineStatus | Plan:
        """Plan a pipeline that has no plan yet (from the mirror, fetched already) and start it, or resume it; its
        final status instead when it ended (meanwhile, or because it cannot be planned)."""
        if PipelineStatus(pipeline.status).is_terminal:
            return PipelineStatus(pipeline.status)
        if pipeline.status == PipelineStatus.PENDING.value and not pipeline.definition:
            try:
                if fetch_failed is not None:
                    raise TaskmasterError(fetch_failed)
                await plan_pipeline(session, pipeline, mirror=self.mirror, fetch=False)
            except (TaskmasterError, OSError) as exc:
                detail = exc.detail if isinstance(exc, TaskmasterError) else str(exc)
                transitions.apply(pipeline, transitions.ERROR, reason=f"could not plan the pipeline: {detail}")
            if PipelineStatus(pipeline.status).is_terminal:
                return PipelineStatus(pipeline.status)
        try:
            plan = Plan.from_json(pipeline.definition)
        except InvalidInput as exc:
            transitions.apply(pipeline, transitions.ERROR, reason=exc.detail)
            return PipelineStatus.ERROR
        if pipeline.status == PipelineStatus.PENDING.value:
            transitions.apply(pipeline, transitions.QUEUE)
        if pipeline.status == PipelineStatus.QUEUED.value:
            transitions.apply(pipeline, transitions.START)
        else:
            await self._recover_lost_attempts(session, pipeline, plan)
        return plan

    async def _recover_lost_attempts(self, session: AsyncSession, pipeline: Pipeline, plan: Plan) -> None:
        lost = (
            await session.execute(
                select(StepAttempt, PipelineStep)
                .join(PipelineStep, PipelineStep.id == StepAttempt.step_id)
                .where(PipelineStep.pipeline_id == pipeline.id, StepAttempt.status == StepStatus.RUNNING.value)
            )
        ).all()
        for attempt, step in lost:
            log.warning("attempt lost", pipeline_id=str(pipeline.id), step=step.step_name, attempt=attempt.attempt)
            lost_reason = FailureReason.INFRA
            transitions.apply_step(attempt, transitions.AGENT_LOST, reason=AGENT_LOST, failure_reason=lost_reason)
            if step.status == StepStatus.RUNNING.value:
                planned = plan[step.step_name]
                after_failure(step, planned, FailureReason.INFRA, None, AGENT_LOST, backoff=self.backoff)

    async def _drive(self, plan: Plan, context: PipelineContext) -> PipelineStatus:
        """Run rounds until the pipeline ends; whatever else ends the rounds (a crash, a cancel, a lost lease), no
        step outlives it."""
        pipeline_id = context.pipeline_id
        running: dict[str, asyncio.Task[StepStatus]] = {}
        stop = asyncio.Event()
        watch = asyncio.create_task(self._watch_lease(pipeline_id, stop)) if self.lease is not None else None
        try:
            return await self._rounds(plan, context, running, stop)
        finally:
            if watch is not None:
                watch.cancel()
            if running:  # the engine is going away (cancelled, crashed, lost its lease) with steps still running:
                # stop them, but leave their attempts `running`: whoever resumes the pipeline records them as lost
                # ("agent lost", infra) and redoes them
                self._fenced.add(pipeline_id)
                stop.set()
                await asyncio.gather(*running.values(), return_exceptions=True)
            self._fenced.discard(pipeline_id)
            self.slots.forget(pipeline_id)  # reserved by a round that did not launch

    def _step_done(self, _: asyncio.Task[StepStatus]) -> None:
        self.slots.release()

    async def _watch_lease(self, pipeline_id: uuid.UUID, stop: asyncio.Event) -> None:
        """Stop the pipeline's steps (without recording them) the moment this worker's lease lapses."""
        assert self.lease is not None
        await self.lease.lapsed()
        log.warning("lease lapsed: stopping the pipeline's steps", pipeline_id=str(pipeline_id))
        self._fenced.add(pipeline_id)
        stop.set()

    async def _rounds(
        self, plan: Plan, context: PipelineContext, running: dict[str, asyncio.Task[StepStatus]], stop: asyncio.Event
    ) -> PipelineStatus:
        pipeline_id = context.pipeline_id
        concurrency = self.concurrency or plan.concurrency or self.settings.worker.concurrency
        final: PipelineStatus | None = None
        while True:
            launch: list[Launch] = []
            wake_at: float | None = None
            if pipeline_id in self._fenced:
                raise LeaseLost(f"this worker's heartbeat lapsed; pipeline {pipeline_id} is left to the reaper")
            # On SQLite the engine's writers queue in this process (`single_writer`) instead of in SQLite's busy
            # handler, which sleeps in growing steps: with 8 steps ending at once, records took up to 118 ms.
            async with self.db.single_writer(), self.db.transaction() as session:
                pipeline = await _get_pipeline(session, pipeline_id)
                if pipeline.worker_id != self.worker_id:
                    self._fenced.add(pipeline_id)
                    raise LeaseLost(f"pipeline {pipeline_id} was taken over by worker {pipeline.worker_id}")
                # Names and statuses only: loading every step's row (and its JSON) each round was the engine's
                # main cost per step on long pipelines; full rows are loaded for the steps that change.
                views = await _step_views(session, pipeline_id)
                status = PipelineStatus(pipeline.status)
                changed = False
                now = utcnow()
                deadline = as_utc(pipeline.started_at or now) + timedelta(seconds=plan.timeout)
                if status is PipelineStatus.RUNNING and now >= deadline:
                    transitions.apply(
                        pipeline,
                        transitions.TIME_OUT,
                        reason=f"the pipeline ran past its timeout of {plan.timeout} s",
                        failure_reason=FailureReason.TIMEOUT,
                        now=now,
                    )
                    status, changed = PipelineStatus.TIMED_OUT, True
                if status.is_terminal:
                    stop.set()
                    if not running:
                        unfinished = [n for n, v in views.items() if not StepStatus(v.status).is_terminal]
                        changed |= _cancel_unfinished((await _steps(session, pipeline_id, unfinished)).values(), status)
                        final = status
                else:
                    statuses = {name: view.status for name, view in views.items()}
                    skip = steps_to_skip(plan, statuses)
                    skipped_rows = await _steps(session, pipeline_id, skip) if skip else {}
                    for name in skip:
                        need = next((n for n in plan[name].needs if _blocks(statuses[n])), None)
                        why = f"'{need}' {_ENDED.get(statuses[need], 'did not succeed')}" if need else "no step failed"
                        transitions.apply_step(skipped_rows[name], transitions.STEP_SKIP, reason=why, now=now)
                        statuses[name] = StepStatus.SKIPPED.value
                        changed = True
                    if not running and is_finished(plan, statuses):
                        await self._finish(session, pipeline, plan, await _steps(session, pipeline_id))
                        final, changed = PipelineStatus(pipeline.status), True
                    else:
                        due = [
                            name
                            for name, step in views.items()
                            if step.status == StepStatus.RETRY_SCHEDULED.value
                            and (step.next_attempt_at is None or as_utc(step.next_attempt_at) <= now)
                        ]
                        candidates = sorted(set(ready_steps(plan, statuses)) | set(due), key=lambda n: plan[n].position)
                        # Reserved before the next await, so that other pipelines' rounds see these slots taken.
                        room = concurrency - len(running)
                        chosen = candidates[: self.slots.reserve(pipeline_id, len(candidates), room_in_pipeline=room)]
                        starting = await _steps_to_start(session, pipeline_id, chosen) if chosen else {}
                        for name in chosen:
                            step, last = starting[name]
                            launch.append(await self._start_attempt(session, step, last, plan[name]))
                            changed = True
                        waiting = [
                            as_utc(step.next_attempt_at)
                            for step in views.values()
                            if step.status == StepStatus.RETRY_SCHEDULED.value and step.next_attempt_at is not None
                        ]
                        soonest = min([*waiting, deadline])
                        wake_at = time.monotonic() + max(0.0, (soonest - now).total_seconds())
            if changed:
                await self._changed(pipeline_id)
            if final is not None:
                return final
            for started in launch:
                name = started.planned.name
                running[name] = asyncio.create_task(
                    self._run_launched(pipeline_id, started, stop), name=f"pipeline {pipeline_id} {name}"
                )
                running[name].add_done_callback(self._step_done)
            self.slots.hand_over(pipeline_id, len(launch))
            timeout = self.poll_seconds
            if wake_at is not None:
                timeout = min(timeout, max(0.0, wake_at - time.monotonic()))
            if running:
                done, _ = await asyncio.wait(running.values(), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                for name, task in list(running.items()):
                    if task in done:
                        del running[name]
                        if (crash := task.exception()) is not None:
                            log.error("attempt crashed", pipeline_id=str(pipeline_id), step=name, exc_info=crash)
                            # `_drive` stops the other steps; the pipeline stays `running` for a later `run()`.
                            raise crash
            elif timeout > 0:
                await asyncio.sleep(timeout)

    async def _start_attempt(
        self, session: AsyncSession, step: PipelineStep, last: int, planned: PlannedStep
    ) -> Launch:
        """Start attempt `last + 1` of `step` (its row and a new attempt row `running`, owned by this engine)."""
        number = last + 1
        # A first attempt starts the step's log; only a later one has earlier output to start after.
        offset = await log_end(session, step.id) if last else 0
        transitions.apply_step(step, transitions.STEP_START)
        step.worker_id = self.worker_id
        session.add(
            StepAttempt(
                step_id=step.id,
                attempt=number,
                status=StepStatus.RUNNING.value,
                worker_id=self.worker_id,
                started_at=utcnow(),
            )
        )
        return Launch(step.id, planned, number, offset)

    async def _finish(
        self, session: AsyncSession, pipeline: Pipeline, plan: Plan, steps: dict[str, PipelineStep]
    ) -> None:
        statuses = {name: step.status for name, step in steps.items()}
        broken = [s for s in plan.steps if steps[s.name].status == StepStatus.ERROR.value and not s.allow_failure]
        if broken:
            step = steps[broken[0].name]
            reason = f"step '{step.step_name}' cannot run: {step.error_message}"
            transitions.apply(pipeline, transitions.ERROR, reason=reason)
            return
        if not has_failure(plan, statuses):
            transitions.apply(pipeline, transitions.SUCCEED)
            return
        failed = next(
            steps[s.name] for s in plan.steps if StepStatus(steps[s.name].status).is_failure and not s.allow_failure
        )
        tail = await log_tail(session, failed.id, chars=2000)
        message = f"step '{failed.step_name}' {failed.status.replace('_', ' ')}: {failed.error_message or ''}".rstrip()
        if tail.strip():
            message += "\n" + tail
        reason = FailureReason(failed.failure_reason) if failed.failure_reason else FailureReason.CODE
        transitions.apply(pipeline, transitions.FAIL, reason=message, failure_reason=reason)

    # --- one attempt of one step ---

    async def run_attempt(
        self, pipeline_id: uuid.UUID, step_name: str, attempt: int, *, stop: asyncio.Event | None = None
    ) -> StepStatus:
        """Run attempt `attempt` (its row already `running`) of step `step_name`, record how it ended (and whether
        it is retried) and return the step's new status. `stop` set: stop the step (cancel or pipeline timeout)."""
        async with self.db.session() as session:
            step = await _get_step(session, pipeline_id, step_name)
            offset = await log_end(session, step.id)
        planned = PlannedStep.from_json(step.config)
        launch = Launch(step.id, planned, attempt, offset)
        return await self._run_launched(pipeline_id, launch, stop)

    async def _run_launched(self, pipeline_id: uuid.UUID, launch: Launch, stop: asyncio.Event | None) -> StepStatus:
        planned = launch.planned
        context = self._contexts.get(pipeline_id) or await self._load_context(pipeline_id)
        outcome, tail = await self.attempts.run(context, launch, stop)
        if pipeline_id in self._fenced:  # the new owner records this attempt (as lost) and redoes it
            return StepStatus.RUNNING
        status = await self.attempts.record(launch.step_id, planned, launch.attempt, outcome, log_tail=tail)
        await self._changed(pipeline_id)
        return status

    # --- helpers ---

    async def _load_context(self, pipeline_id: uuid.UUID) -> PipelineContext:
        async with self.db.session() as session:
            pipeline = await _get_pipeline(session, pipeline_id)
            return await self._context(pipeline, await _get_project(session, pipeline))

    async def _context(self, pipeline: Pipeline, project: Project) -> PipelineContext:
        token, secrets = self._project_secrets(project)
        return PipelineContext(
            pipeline_id=pipeline.id,
            repository=project.repository,
            sha=pipeline.commit_sha or "",
            token=token,
            secrets=secrets,
            site=await self.sites.site_for(pipeline.id, project.repository),
            limit_maxima=project_settings.load(project.settings).limits.model_dump(exclude_none=True),
        )

    def _project_secrets(self, project: Project) -> tuple[str | None, list[str]]:
        """The project's forge token (for fetching) and every secret value to mask in logs."""
        return self.credentials.forge_token(project), self.credentials.masked(project)

    async def _changed(self, pipeline_id: uuid.UUID) -> None:
        if self.on_change is None:
            return
        try:
            await self.on_change(pipeline_id)
        except Exception:
            log.warning("on_change hook failed", pipeline_id=str(pipeline_id), exc_info=True)


async def cancel_pipeline(
    session: AsyncSession, pipeline_id: uuid.UUID, *, reason: str = "canceled by request"
) -> Pipeline:
    """Apply CANCEL to a live pipeline (any process may: the engine running it polls the row and stops its steps).

    Raises `NotFound`, or `Conflict` when the pipeline has finished already. The caller owns the transaction.
    """
    pipeline = await _get_pipeline(session, pipeline_id)
    transitions.apply(pipeline, transitions.CANCEL, reason=reason)
    return pipeline


async def _get_pipeline(session: AsyncSession, pipeline_id: uuid.UUID) -> Pipeline:
    pipeline = await session.get(Pipeline, pipeline_id, populate_existing=True)
    if pipeline is None:
        raise NotFound(f"pipeline {pipeline_id} does not exist")
    return pipeline


async def _get_project(session: AsyncSession, pipeline: Pipeline) -> Project:
    project = await session.get(Project, pipeline.project_id)
    if project is None:
        raise NotFound(f"project {pipeline.project_id} does not exist")
    return project


async def _get_step(session: AsyncSession, pipeline_id: uuid.UUID, name: str) -> PipelineStep:
    step = await session.scalar(
        select(PipelineStep).where(PipelineStep.pipeline_id == pipeline_id, PipelineStep.step_name == name)
    )
    if step is None:
        raise NotFound(f"pipeline {pipeline_id} has no step {name!r}")
    return step


async def _steps(
    session: AsyncSession, pipeline_id: uuid.UUID, names: Iterable[str] | None = None
) -> dict[str, PipelineStep]:
    query = select(PipelineStep).where(PipelineStep.pipeline_id == pipeline_id).order_by(PipelineStep.position)
    if names is not None:
        query = query.where(PipelineStep.step_name.in_(list(names)))
    return {row.step_name: row for row in await session.scalars(query)}


async def _steps_to_start(
    session: AsyncSession, pipeline_id: uuid.UUID, names: Iterable[str]
) -> dict[str, tuple[PipelineStep, int]]:
    """The steps' rows with the number of their last attempt (0 before the first), in one query."""
    last = (
        select(func.coalesce(func.max(StepAttempt.attempt), 0))
        .where(StepAttempt.step_id == PipelineStep.id)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(PipelineStep, last).where(
            PipelineStep.pipeline_id == pipeline_id, PipelineStep.step_name.in_(list(names))
        )
    )
    return {step.step_name: (step, number) for step, number in rows.all()}


@dataclass(frozen=True, slots=True)
class _StepView:
    status: str
    next_attempt_at: datetime | None


async def _step_views(session: AsyncSession, pipeline_id: uuid.UUID) -> dict[str, _StepView]:
    rows = await session.execute(
        select(PipelineStep.step_name, PipelineStep.status, PipelineStep.next_attempt_at).where(
            PipelineStep.pipeline_id == pipeline_id
        )
    )
    return {name: _StepView(status, next_at) for name, status, next_at in rows.all()}


# Why a dependent is skipped, in the need's own terms: a skipped need did not fail.
_ENDED = {"failed": "failed", "skipped": "was skipped", "canceled": "was canceled", "timed_out": "timed out"}


def _blocks(status: str) -> bool:
    return StepStatus(status).is_terminal and status != StepStatus.SUCCESS.value


def _cancel_unfinished(steps: Iterable[PipelineStep], status: PipelineStatus) -> bool:
    why = "the pipeline timed out" if status is PipelineStatus.TIMED_OUT else f"the pipeline is {status.value}"
    return transitions.cancel_unfinished(steps, reason=why)
