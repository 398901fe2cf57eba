"""What the pipeline engine needs from a place that runs steps: the `Executor` protocol and its value types."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from taskmaster.core.errors import InvalidInput
from taskmaster.core.outcomes import FailureReason as FailureReason
from taskmaster.core.outcomes import Outcome
from taskmaster.core.outcomes import signal_name as signal_name

OutputCallback = Callable[[bytes], Awaitable[None]]

DEFAULT_MAX_OUTPUT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSpec:
    """One shell command to run.

    `workdir` is a path on the executor's machine (an executor may restrict where: see its docs). `env` is the
    step's whole environment on top of the executor's documented defaults; nothing else is inherited. `timeout`
    counts from the moment the step starts (not while it waits for a free slot); on expiry, and on cancel, the
    step's processes get SIGTERM, then SIGKILL after `grace` seconds. Output (stdout and stderr merged) beyond
    `max_output_bytes` is dropped after one marker line. `network`: whether the step may reach the network; an
    executor that can isolate steps (the local sandbox) cuts it off otherwise, one that cannot (SSH) ignores it.
    `limits`: resource limits the step asks for (`cpu`, `memory`, `processes`, `disk`, `tmp`); an executor that
    enforces limits applies them within its maximum, one that cannot (SSH) ignores them.
    """

    command: str
    workdir: str
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float
    grace: float = 5.0
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    network: bool = False
    limits: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in self.env.items():
            if not name or "=" in name or "\0" in name or "\0" in value:
                raise InvalidInput(f"invalid environment variable for a step: {name!r}")
        if "\0" in self.command or "\0" in self.workdir:
            raise InvalidInput("the step's command or workdir contains a NUL byte")
        if not self.workdir:
            raise InvalidInput("the step's workdir is empty")
        if self.timeout <= 0 or self.grace < 0:
            raise InvalidInput("a step's timeout must be positive and its grace not negative")
        if self.max_output_bytes < 0:
            raise InvalidInput("max_output_bytes must not be negative")


StepOutcome = Outcome
"""How a step ended (`core.outcomes.Outcome`). `run` always returns one; it does not raise for the step's or the
machine's failures. `failure_reason` "infra" means the executor could not run the step or lost it (retry
elsewhere), with a `reason` naming the host."""


class Executor(Protocol):
    """A place that runs steps: this machine, a remote instance, a pool of them.

    Lifecycle: built without I/O (no connection at construction); resources (connections, processes) are made on
    first use and kept for reuse; `aclose()` releases them, after which the executor must not be used.
    Concurrency: `run` may be awaited from many tasks at once; the executor caps how many steps run at the same
    time and makes the others wait (the wait does not count against their timeout; `cancel` ends it).
    Errors: `run` raises `InvalidInput` only for a spec this executor cannot accept (e.g. a workdir outside its
    workspace root). Everything else is an outcome: non-zero exit "code", timeout "timeout", an unreachable
    machine, refused authentication or a connection lost mid-step "infra" with a reason naming the machine.
    Setting `cancel` stops the step like a timeout (SIGTERM, grace, SIGKILL) and returns `canceled=True`. An
    exception raised by `on_output` stops the step and is re-raised; if the awaiting task is cancelled, the step
    is killed at once.
    """

    @property
    def name(self) -> str:
        """A stable name for logs and outcomes, e.g. "ssh:wsl-1"."""
        ...

    async def run(
        self,
        spec: StepSpec,
        *,
        on_output: OutputCallback | None = None,
        cancel: asyncio.Event | None = None,
    ) -> StepOutcome:
        """Run `spec` and return how it ended; output goes to `on_output` chunk by chunk, in order, as produced."""
        ...

    async def aclose(self) -> None:
        """Release connections and stop background work; steps still running are killed."""
        ...


def infra_outcome(reason: str, *, duration: float, ran_on: str | None = None, output_bytes: int = 0) -> StepOutcome:
    """The outcome of a step the executor could not run, or lost: retry it, maybe elsewhere."""
    return Outcome.infra(reason, duration=duration, ran_on=ran_on, output_bytes=output_bytes)


def canceled_outcome(*, duration: float, ran_on: str | None = None) -> StepOutcome:
    """The outcome of a step canceled before it started (e.g. while it waited for a slot)."""
    return Outcome.stopped(duration=duration, ran_on=ran_on)
