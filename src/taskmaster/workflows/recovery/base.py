"""What a debug round asks and gets back (`DebugInput`, `DebugAnswer`), the `Debugger` protocol, the registry of
debuggers by `recovery.agent` name that the runtime fills, and the services a recovery needs from its process."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from taskmaster.agents.base import AgentNotConfigured
from taskmaster.config import Settings
from taskmaster.db.models import Project
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.forges import ForgeFactory
from taskmaster.workspaces.git_cache import MirrorCache


@dataclass(frozen=True, slots=True)
class PriorRound:
    """An earlier round of the same step, as the next round is told about it."""

    round: int
    patch: str | None
    result: str
    detail: str | None


@dataclass(frozen=True, slots=True)
class DebugInput:
    """One debug round: the failure, the pull request's change, and what earlier rounds tried. `prompt` is the
    rendered `recovery.debug` template (its version in `template_version`)."""

    project_id: uuid.UUID
    project_name: str
    pipeline_id: uuid.UUID
    step_name: str
    round: int
    commit_sha: str
    branch: str | None
    repository: str | None
    """The forge's `owner/name`, when the project has one."""
    prompt: str
    template_name: str
    template_version: int
    resume_id: str | None = None
    """The external id of the agent run that made the pull request (a Codegen run), to continue it."""


@dataclass(frozen=True, slots=True)
class DebugAnswer:
    """A round's answer: `patch` (a unified diff; None: no fix) with its `explanation`, and what it cost.
    `handed_off`: the failure went to an agent that pushes its own fix (Codegen); there is no patch to try."""

    patch: str | None
    explanation: str
    agent: str
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 1
    cost_usd: float | None = None
    handed_off: bool = False


class Debugger(Protocol):
    """One recovery agent for one project.

    Lifecycle: made by its registry entry for a project (`AgentNotConfigured`, naming what is missing, when it
    cannot work there), then `debug` once per round; `aclose` releases what it holds. Concurrency: one round at a
    time. `needs_checkout`: the round gets `workspace`, a fresh checkout of the commit under test that it may edit
    (its diff is then the patch); otherwise `workspace` is None. Errors: `TaskmasterError` for a service that failed
    (the round ends `error`); the agent is hostile: what it returns is checked before anything uses it.
    """

    @property
    def label(self) -> str: ...

    @property
    def needs_checkout(self) -> bool: ...

    async def debug(self, request: DebugInput, workspace: Path | None) -> DebugAnswer: ...

    async def aclose(self) -> None: ...


DebuggerFactory = Callable[[Project], Debugger]
"""Makes the debugger of one `recovery.agent` name for a project; raises `AgentNotConfigured` when it cannot."""


class DebuggerRegistry(Mapping[str, DebuggerFactory]):
    """Debugger factories by `recovery.agent` name (`anthropic`, `openai`, `ollama`, `agentapi`, `codegen`)."""

    def __init__(self, factories: Mapping[str, DebuggerFactory] | None = None) -> None:
        self._factories = dict(factories or {})

    def __getitem__(self, name: str) -> DebuggerFactory:
        return self._factories[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)

    def with_debuggers(self, **factories: DebuggerFactory) -> DebuggerRegistry:
        """A registry where `factories` replace the entries of their names."""
        return DebuggerRegistry({**self._factories, **factories})

    def make(self, name: str, project: Project) -> Debugger:
        """The debugger `name` for `project`; `AgentNotConfigured` naming the known ones when there is none."""
        factory = self._factories.get(name)
        if factory is None:
            known = ", ".join(sorted(self._factories)) or "none"
            raise AgentNotConfigured(f"no recovery agent {name!r} in this process (configured: {known})")
        return factory(project)


TrialRunner = Callable[[uuid.UUID], Awaitable[PipelineStatus]]
"""Runs a trial pipeline (created owned by `RecoveryServices.trial_owner`) to its end in this process."""


@dataclass(frozen=True, slots=True)
class RecoveryServices:
    """What a recovery needs from its process (the runtime fills it): the mirror cache, credentials, forge
    clients, the debuggers, and an engine that runs trial pipelines as `trial_owner` (no forge reports, no
    recovery hook)."""

    settings: Settings
    mirror: MirrorCache
    credentials: Credentials
    forges: ForgeFactory
    debuggers: DebuggerRegistry
    run_trial: TrialRunner
    trial_owner: str
    workspace_root: Path
