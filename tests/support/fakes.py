"""Fakes of the engine's adapters: a scripted executor and the sites that hand it out, for engine-rule tests that
need neither git nor the sandbox."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from taskmaster.core.outcomes import FailureReason, Outcome
from taskmaster.executors.base import OutputCallback, StepSpec
from taskmaster.workspaces.errors import WorkspaceError


@dataclass(frozen=True, slots=True)
class Scripted:
    """What one attempt of a step does: write `output`, take `seconds`, then exit with `exit_code` (or end as an
    `infra` failure with `infra` as its reason). `crash`: raise it after `seconds`, as a broken executor would."""

    exit_code: int = 0
    output: bytes = b""
    seconds: float = 0.0
    infra: str | None = None
    crash: BaseException | None = None


@dataclass(slots=True)
class Call:
    """One `run` the fake received, with when it started and ended (monotonic) and how."""

    step: str
    attempt: int
    spec: StepSpec
    started: float
    ended: float | None = None
    outcome: Outcome | None = None


@dataclass
class FakeExecutor:
    """An `Executor` that runs nothing: each attempt of a step follows its script (by step name, one `Scripted` per
    attempt, the last repeated; a step without a script succeeds at once). It honours `timeout`, `cancel` and the
    step's `grace` as the protocol says, and records every call, so tests can assert what ran, when and how often."""

    scripts: dict[str, list[Scripted]] = field(default_factory=dict)
    name: str = "fake"
    calls: list[Call] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def script(self, step: str, *attempts: Scripted) -> FakeExecutor:
        self.scripts[step] = list(attempts)
        return self

    def attempts(self, step: str) -> list[Call]:
        return [call for call in self.calls if call.step == step]

    async def run(
        self, spec: StepSpec, *, on_output: OutputCallback | None = None, cancel: asyncio.Event | None = None
    ) -> Outcome:
        step, attempt = spec.env.get("TASKMASTER_STEP", "?"), int(spec.env.get("TASKMASTER_ATTEMPT", "1"))
        plan = self.scripts.get(step) or [Scripted()]
        scripted = plan[min(attempt, len(plan)) - 1]
        call = Call(step, attempt, spec, time.monotonic())
        self.calls.append(call)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.started.set()
        try:
            call.outcome = await self._play(scripted, spec, on_output, cancel, call.started)
            return call.outcome
        finally:
            self.running -= 1
            call.ended = time.monotonic()

    async def _play(
        self,
        scripted: Scripted,
        spec: StepSpec,
        on_output: OutputCallback | None,
        cancel: asyncio.Event | None,
        started: float,
    ) -> Outcome:
        if scripted.output and on_output is not None:
            await on_output(scripted.output[: spec.max_output_bytes])
        stopper = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
        waits: set[asyncio.Future[object]] = {asyncio.ensure_future(asyncio.sleep(min(scripted.seconds, spec.timeout)))}
        if stopper is not None:
            waits.add(stopper)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        duration = time.monotonic() - started
        if cancel is not None and cancel.is_set():
            return _outcome(143, duration, canceled=True, signal=15, reason="canceled")
        if scripted.crash is not None:
            raise scripted.crash
        if scripted.seconds > spec.timeout:
            return _outcome(143, duration, timed_out=True, signal=15, failure="timeout", reason="timeout")
        if scripted.infra is not None:
            return _outcome(None, duration, failure="infra", reason=scripted.infra)
        failure = "code" if scripted.exit_code else None
        return _outcome(scripted.exit_code, duration, failure=failure, output_bytes=len(scripted.output))

    async def aclose(self) -> None:
        """Nothing to release."""


def _outcome(
    exit_code: int | None,
    duration: float,
    *,
    timed_out: bool = False,
    canceled: bool = False,
    signal: int | None = None,
    failure: str | None = None,
    reason: str | None = None,
    output_bytes: int = 0,
) -> Outcome:
    return Outcome(
        exit_code=exit_code,
        signal=signal,
        timed_out=timed_out,
        canceled=canceled,
        output_truncated=False,
        duration=duration,
        failure_reason=FailureReason(failure) if failure else None,
        reason=reason,
        output_bytes=output_bytes,
        ran_on="fake",
    )


@dataclass
class FakeSite:
    """A site whose checkouts make nothing (or fail as `infra` while `broken_checkouts` is above zero)."""

    pipeline_id: uuid.UUID
    fake: FakeExecutor
    checkouts: list[str]
    broken: Callable[[], bool]

    @property
    def executor(self) -> FakeExecutor:
        return self.fake

    def path(self, name: str) -> str:
        return f"/fake/{self.pipeline_id}/{name}"

    async def checkout(self, name: str, repository: str, sha: str, *, token: str | None) -> None:
        self.checkouts.append(name)
        if self.broken():
            raise WorkspaceError(f"could not check out {sha[:12]} of {repository}: the fake disk is full")

    async def clean(self) -> None:
        """Nothing was made."""


@dataclass
class FakeSites:
    """Hands every pipeline a `FakeSite` over one `FakeExecutor`; `checkouts` lists the workspaces asked for."""

    fake: FakeExecutor = field(default_factory=FakeExecutor)
    checkouts: list[str] = field(default_factory=list)
    broken_checkouts: int = 0

    async def site_for(self, pipeline_id: uuid.UUID, repository: str) -> FakeSite:
        return FakeSite(pipeline_id, self.fake, self.checkouts, self._break_one)

    def _break_one(self) -> bool:
        if self.broken_checkouts <= 0:
            return False
        self.broken_checkouts -= 1
        return True

    async def aclose(self) -> None:
        """Nothing to release."""
