"""`LocalExecutor`: steps on this machine, each in the bubblewrap sandbox (`workspaces.sandbox`), as an `Executor`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal

from taskmaster.executors.base import OutputCallback, StepOutcome, StepSpec
from taskmaster.workspaces import sandbox


class LocalExecutor:
    """Runs each step in a sandbox on this machine: read-only host, writable workdir, no network unless the spec
    asks for it, its own PID namespace, an unprivileged user, `limits`, and `hidden` paths covered.

    `spec.workdir` is the step's workspace on this machine; `spec.max_output_bytes` replaces the output cap of
    `limits`. `hidden` may be a function, asked at each step (the paths to cover may appear while the executor
    lives). Any number of steps may run at once: the pipeline's and the worker's concurrency limit them.
    """

    name = "local"

    def __init__(
        self,
        *,
        limits: sandbox.Limits = sandbox.Limits(),
        hidden: tuple[Path, ...] | Callable[[], tuple[Path, ...]] = (),
        isolation: Literal["auto", "bwrap", "none"] = "auto",
        read_only: tuple[Path, ...] = (),
    ) -> None:
        self.limits = limits
        self.hidden = hidden
        self.isolation: Literal["auto", "bwrap", "none"] = isolation
        self.read_only = read_only

    def showing(self, *paths: Path) -> LocalExecutor:
        """The same executor with `paths` visible read-only inside the sandbox, even under a hidden path (a
        checkout's objects live in its repository's mirror, which is hidden)."""
        return LocalExecutor(
            limits=self.limits, hidden=self.hidden, isolation=self.isolation, read_only=(*self.read_only, *paths)
        )

    async def run(
        self,
        spec: StepSpec,
        *,
        on_output: OutputCallback | None = None,
        cancel: asyncio.Event | None = None,
    ) -> StepOutcome:
        """Run `spec` in the sandbox; see `Executor.run`."""
        result = await sandbox.run(
            sandbox.SandboxSpec(
                command=spec.command,
                workspace=Path(spec.workdir),
                env=spec.env,
                network=spec.network,
                timeout=spec.timeout,
                grace=spec.grace,
                limits=replace(self.limits, max_output_bytes=spec.max_output_bytes),
                hidden=self.hidden() if callable(self.hidden) else self.hidden,
                read_only=self.read_only,
                isolation=self.isolation,
            ),
            on_output=on_output,
            cancel=cancel,
        )
        return replace(result, ran_on=self.name)

    async def aclose(self) -> None:
        """Nothing to release: each step's processes end with the step."""
