"""A pool of SSH instances: each step goes to the least busy healthy instance with a free slot; sick instances are
taken out of rotation and brought back once their health check passes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Self

import structlog

from taskmaster.core.errors import InvalidInput, Unavailable
from taskmaster.executors.base import OutputCallback, StepOutcome, StepSpec, canceled_outcome, infra_outcome
from taskmaster.executors.ssh import Health, SshExecutor, SshInstance, StepSlot

log = structlog.stdlib.get_logger("taskmaster.executors.pool")


class NoHealthyInstance(Unavailable):
    """Every instance that could take the step is out of rotation."""

    code = "no_healthy_instance"
    title = "No healthy instance"


@dataclass(frozen=True, slots=True)
class InstanceState:
    """What the pool knows of one instance."""

    name: str
    healthy: bool
    busy: int
    capacity: int
    reason: str | None
    latency: float | None


class _Member:
    def __init__(self, executor: SshExecutor) -> None:
        self.executor = executor
        self.healthy = True
        self.reason: str | None = None
        self.latency: float | None = None

    def state(self) -> InstanceState:
        executor = self.executor
        return InstanceState(
            executor.instance.name, self.healthy, executor.busy, executor.capacity, self.reason, self.latency
        )


class Lease:
    """One slot on the instance the pool picked; `run` runs steps in it (one at a time)."""

    def __init__(self, pool: SshPool, member: _Member, slot: StepSlot) -> None:
        self._pool = pool
        self._member = member
        self._slot = slot

    @property
    def executor(self) -> SshExecutor:
        return self._member.executor

    @property
    def instance(self) -> SshInstance:
        return self._member.executor.instance

    async def run(
        self,
        spec: StepSpec,
        *,
        on_output: OutputCallback | None = None,
        cancel: asyncio.Event | None = None,
    ) -> StepOutcome:
        """Run `spec` on this lease's instance; an "infra" outcome takes the instance out of rotation."""
        outcome = await self._slot.run(spec, on_output=on_output, cancel=cancel)
        if outcome.failure_reason == "infra":
            self._pool._mark(self._member, Health(False, None, outcome.reason))
        return outcome


class SshPool:
    """Several SSH instances behind one `Executor`.

    Lifecycle: `start()` (or `async with`) health-checks every instance and starts the background re-check; `run`
    and `lease` start the pool themselves if needed. `aclose()` stops the re-check and closes every executor.
    Routing: the least busy (by share of capacity) healthy instance with a free slot whose workspace root holds the
    step's workdir; when all those are full, the step waits (without a timeout: `cancel` ends the wait). An
    instance leaves the rotation when its health check fails or a step on it ends as "infra"; every
    `recheck_interval` seconds the pool checks the instances out of rotation and returns those that pass.
    Errors: `run` returns an "infra" outcome when no instance that could take the step is healthy, and raises
    `InvalidInput` when no instance's workspace root holds the workdir. `lease` raises `NoHealthyInstance` instead.
    """

    def __init__(
        self,
        instances: Iterable[SshInstance | SshExecutor],
        *,
        recheck_interval: float = 30.0,
        health_timeout: float = 10.0,
    ) -> None:
        members = [_Member(item if isinstance(item, SshExecutor) else SshExecutor(item)) for item in instances]
        if not members:
            raise InvalidInput("an SSH pool needs at least one instance")
        names = [member.executor.instance.name for member in members]
        if len(set(names)) != len(names):
            raise InvalidInput(f"SSH instance names in a pool must be unique: {names}")
        if recheck_interval <= 0 or health_timeout <= 0:
            raise InvalidInput("recheck_interval and health_timeout must be positive")
        self._members = members
        self._recheck_interval = recheck_interval
        self._health_timeout = health_timeout
        self._changed = asyncio.Event()
        self._started: asyncio.Task[None] | None = None
        self._recheck: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return "ssh-pool:" + ",".join(member.executor.instance.name for member in self._members)

    @property
    def executors(self) -> list[SshExecutor]:
        return [member.executor for member in self._members]

    def states(self) -> list[InstanceState]:
        """Every instance's health and load, in the order the pool was given them."""
        return [member.state() for member in self._members]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Check every instance once and start re-checking the unhealthy ones; idempotent."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        await asyncio.shield(self._started)

    async def check(self) -> list[InstanceState]:
        """Health-check every instance now (in parallel) and update the rotation."""
        await asyncio.gather(*(self._check(member) for member in self._members))
        return self.states()

    async def run(
        self,
        spec: StepSpec,
        *,
        on_output: OutputCallback | None = None,
        cancel: asyncio.Event | None = None,
    ) -> StepOutcome:
        """Run `spec` on the instance the pool picks; see `Executor.run`."""
        waited = time.monotonic()
        try:
            lease = self.lease(workdir=spec.workdir, cancel=cancel)
            async with lease as held:
                if held is None:
                    return canceled_outcome(duration=time.monotonic() - waited, ran_on=self.name)
                return await held.run(spec, on_output=on_output, cancel=cancel)
        except NoHealthyInstance as exc:
            return infra_outcome(exc.detail, duration=time.monotonic() - waited, ran_on=self.name)

    async def pick(self) -> SshExecutor:
        """The healthy instance with the most free capacity, for work that must stay on one instance (a pipeline
        whose steps share a workspace): its steps then run on that executor, which caps them itself. Raises
        `NoHealthyInstance`."""
        await self.start()
        healthy = [member for member in self._members if member.healthy]
        if not healthy:
            reasons = "; ".join(f"{m.executor.instance.name}: {m.reason}" for m in self._members)
            raise NoHealthyInstance(f"no healthy SSH instance in the pool ({reasons})")
        return min(healthy, key=lambda m: m.executor.busy / m.executor.capacity).executor

    @asynccontextmanager
    async def lease(
        self, *, workdir: str | None = None, cancel: asyncio.Event | None = None
    ) -> AsyncIterator[Lease | None]:
        """Hold a slot on the picked instance for the block (waiting for one); None if `cancel` was set first.

        With `workdir`, only instances whose workspace root holds it are considered.
        """
        await self.start()
        candidates = [m for m in self._members if workdir is None or m.executor.instance.contains(workdir)]
        if not candidates:
            raise InvalidInput(f"workdir {workdir!r} is not inside any pool instance's workspace root")
        while True:
            healthy = [member for member in candidates if member.healthy]
            if not healthy:
                reasons = "; ".join(f"{m.executor.instance.name}: {m.reason}" for m in candidates)
                raise NoHealthyInstance(f"no healthy SSH instance in the pool ({reasons})")
            free = [member for member in healthy if member.executor.free > 0]
            if free:
                member = min(free, key=lambda m: m.executor.busy / m.executor.capacity)
                break
            if not await self._wait_for_change(cancel):
                yield None
                return
        async with member.executor.reserve() as slot:
            try:
                yield Lease(self, member, slot)
            finally:
                self._wake()  # a slot is free again

    async def aclose(self) -> None:
        """Stop re-checking and close every instance's connection."""
        for task in (self._recheck, self._started):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await asyncio.gather(*(member.executor.aclose() for member in self._members))

    async def _start(self) -> None:
        await self.check()
        self._recheck = asyncio.ensure_future(self._recheck_loop())

    async def _recheck_loop(self) -> None:
        while True:
            await asyncio.sleep(self._recheck_interval)
            sick = [member for member in self._members if not member.healthy]
            await asyncio.gather(*(self._check(member) for member in sick))

    async def _check(self, member: _Member) -> None:
        try:
            health = await member.executor.health_check(timeout=self._health_timeout)
        except Exception as exc:  # a check must never take the loop down
            health = Health(False, None, f"health check failed: {exc}")
        self._mark(member, health)

    def _mark(self, member: _Member, health: Health) -> None:
        name = member.executor.instance.name
        if health.ok and not member.healthy:
            log.info("ssh instance back in rotation", instance=name, latency=health.latency)
        elif not health.ok and member.healthy:
            log.warning("ssh instance out of rotation", instance=name, reason=health.reason)
        member.healthy, member.reason = health.ok, health.reason
        if health.latency is not None:
            member.latency = health.latency
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_for_change(self, cancel: asyncio.Event | None) -> bool:
        """Wait until a slot frees or health changes; False if `cancel` was set first."""
        waiters: set[asyncio.Future[bool]] = {asyncio.ensure_future(self._changed.wait())}
        if cancel is not None:
            waiters.add(asyncio.ensure_future(cancel.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return cancel is None or not cancel.is_set()
