"""Built-in steps (`uses: name` in `.taskmaster.yml`): what Taskmaster runs itself instead of a shell command, behind
one protocol and held in a registry; `BUILTIN_STEPS`, the names a definition may use, is derived from it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from taskmaster.core.outcomes import Outcome

AI_REVIEW_NOT_CONFIGURED = "AI review is not configured"


@dataclass(frozen=True, slots=True)
class BuiltinRun:
    """What a built-in step gets for one attempt: which step of which pipeline at which commit, the step's log
    (`write`), the pipeline's shared workspace (`checkout()` makes it; `workspace` is its path at the site), and
    the step's options (`params`, its `with:`)."""

    pipeline_id: uuid.UUID
    step: str
    attempt: int
    sha: str
    workspace: str
    write: Callable[[bytes], Awaitable[None]]
    checkout: Callable[[], Awaitable[None]]
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


class BuiltinStep(Protocol):
    """One built-in step.

    Lifecycle: built once (at start-up, without I/O) and shared by every pipeline of an engine. Concurrency: `run`
    may be awaited for many attempts at once. Errors: `run` returns an `Outcome` for everything the step decides
    (`failure_reason` "code" for a finding, "infra" for a service that could not be reached, `skipped=True` when
    there is nothing to do); a `WorkspaceError` from `checkout()` may pass through (an infra failure). Being
    cancelled (the pipeline was canceled or timed out) must leave nothing running.
    """

    @property
    def name(self) -> str:
        """The name a definition uses (`uses: <name>`)."""
        ...

    async def run(self, run: BuiltinRun) -> Outcome: ...


class Checkout:
    """`checkout`: make the pipeline's shared workspace at the commit under test."""

    name = "checkout"

    async def run(self, run: BuiltinRun) -> Outcome:
        started = time.monotonic()
        await run.checkout()
        duration = time.monotonic() - started
        await run.write(f"checked out {run.sha} in {duration:.2f} s\n".encode())
        return Outcome(exit_code=0, duration=duration)


class ReviewNotConfigured:
    """`ai_review` while no reviewer is configured: the step is skipped, saying so in its log."""

    name = "ai_review"

    async def run(self, run: BuiltinRun) -> Outcome:
        await run.write(f"{AI_REVIEW_NOT_CONFIGURED}: skipped\n".encode())
        return Outcome(skipped=True, reason=AI_REVIEW_NOT_CONFIGURED)


class BuiltinRegistry(Mapping[str, BuiltinStep]):
    """Built-in steps by name. `with_steps` gives a registry where the given steps replace those of their name
    (e.g. a configured reviewer in place of `ReviewNotConfigured`)."""

    def __init__(self, steps: Iterable[BuiltinStep]) -> None:
        self._steps = {step.name: step for step in steps}

    def __getitem__(self, name: str) -> BuiltinStep:
        return self._steps[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    def with_steps(self, *steps: BuiltinStep) -> BuiltinRegistry:
        return BuiltinRegistry([*self._steps.values(), *steps])


DEFAULT_BUILTINS = BuiltinRegistry([Checkout(), ReviewNotConfigured()])
BUILTIN_STEPS: tuple[str, ...] = tuple(DEFAULT_BUILTINS)
"""The names `uses:` accepts."""
