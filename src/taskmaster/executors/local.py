"""`LocalExecutor`: steps on this machine, each in the bubblewrap sandbox (`workspaces.sandbox`), as an `Executor`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Literal

from taskmaster.executors.base import OutputCallback, StepOutcome, StepSpec
from taskmaster.workspaces import sandbox
from taskmaster.workspaces.errors import SandboxUnavailable

# `.taskmaster.yml` names of the limits -> `sandbox.Limits` fields.
_LIMIT_NAMES = {
    "cpu": "cpu_seconds",
    "memory": "memory_bytes",
    "processes": "max_processes",
    "disk": "disk_bytes",
    "tmp": "tmp_bytes",
}


class LocalExecutor:
    """Runs each step in a sandbox on this machine: only the host's toolchain visible (read-only), the workdir
    writable at `/workspace`, its own network namespace (outbound network through slirp4netns when the spec asks
    for it, never the host's loopback or addresses), its own PID namespace, an unprivileged user, `limits`, and
    `hidden` paths covered. `isolation` "none" (the setting `executor.sandbox = "off"`) runs steps unsandboxed.

    `spec.workdir` is the step's workspace on this machine; `spec.max_output_bytes` replaces the output cap of
    `limits`. `run` raises `SandboxUnavailable` (a configuration error: nothing ran) when a tool the sandbox needs
    is missing. `hidden` may be a function, asked at each step (the paths to cover may appear while the executor
    lives). Any number of steps may run at once: the pipeline's and the worker's concurrency limit them.
    """

    name = "local"

    def __init__(
        self,
        *,
        limits: sandbox.Limits = sandbox.Limits(),
        hidden: tuple[Path, ...] | Callable[[], tuple[Path, ...]] = (),
        isolation: Literal["bwrap", "none"] = "bwrap",
        read_only: tuple[Path, ...] = (),
        maximum: sandbox.Limits | None = None,
    ) -> None:
        self.limits = limits
        self.maximum = maximum
        self.hidden = hidden
        self.isolation: Literal["bwrap", "none"] = isolation
        self.read_only = read_only

    def showing(self, *paths: Path) -> LocalExecutor:
        """The same executor with `paths` visible read-only inside the sandbox, even under a hidden path (a
        checkout's objects live in its repository's mirror, which is hidden)."""
        return LocalExecutor(
            limits=self.limits,
            hidden=self.hidden,
            isolation=self.isolation,
            read_only=(*self.read_only, *paths),
            maximum=self.maximum,
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
                limits=replace(self.asked(spec.limits), max_output_bytes=spec.max_output_bytes),
                hidden=self.hidden() if callable(self.hidden) else self.hidden,
                read_only=self.read_only,
                isolation=self.isolation,
            ),
            on_output=on_output,
            cancel=cancel,
        )
        return replace(result, ran_on=self.name)

    def asked(self, asked: Mapping[str, int]) -> sandbox.Limits:
        """`limits` with what the step asks for (`StepSpec.limits`) instead; `SandboxUnavailable` for a value
        above `maximum` (a configuration error: the step does not run)."""
        changes: dict[str, int] = {}
        for key, value in asked.items():
            name = _LIMIT_NAMES.get(key)
            if name is None:
                raise SandboxUnavailable(f"unknown step limit {key!r}; known: {', '.join(_LIMIT_NAMES)}")
            most = getattr(self.maximum, name) if self.maximum is not None else None
            if most is not None and value > most:
                raise SandboxUnavailable(
                    f"the step asks for limits.{key} = {value}, above this server's maximum {most} "
                    f"(executor.max_limits.{name}): ask for less, or raise the maximum"
                )
            changes[name] = value
        return replace(self.limits, **changes) if changes else self.limits

    async def aclose(self) -> None:
        """Nothing to release: each step's processes end with the step."""
