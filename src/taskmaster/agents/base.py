"""What Taskmaster needs from a coding agent, whoever runs it: the `CodingAgent` protocol with its job and result,
and `AgentConversation`, one chat with an agent (the AgentAPI client is one)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from taskmaster.core.errors import InvalidInput

AgentKind = Literal["offline", "agentapi", "codegen"]
"""The coding agents a project (or one `codegen run`) may choose."""

AgentFailure = Literal["failed", "timeout", "refused", "infra"]
"""Why a job ended without a result: the agent said it failed; it ran out of time; it asked for a permission the
project's policy refuses; the agent or its service could not be reached or started."""


class AgentNotConfigured(InvalidInput):
    """The agent cannot be made for this project: unknown kind, command not installed, key or URL missing. Raised
    before anything starts, so nothing needs undoing; the message names what is missing."""


@dataclass(frozen=True, slots=True)
class CodingJob:
    """One piece of work for one agent in one checkout.

    `checkout` is a fresh working tree the agent may change (and nothing outside it); `prompt` is already rendered
    (its template recorded by the caller). `metadata` goes to services that keep it (Codegen's run metadata).
    `resume_id` is the `external_id` a previous attempt of the same job reported through `on_started`: an agent
    whose work lives outside this process (Codegen) continues that run instead of starting a second one.
    """

    project_id: uuid.UUID
    project_name: str
    task_number: int | None
    title: str
    prompt: str
    checkout: Path
    branch: str
    base_branch: str
    timeout: float = 1800.0
    repository: str | None = None
    """The forge's name of the repository (`owner/name`), for agents that open the pull request themselves."""
    details: str | None = None
    """The task's details as written (the offline agent applies a diff or file blocks found there)."""
    acceptance: tuple[str, ...] = ()
    test_strategy: str | None = None
    metadata: Mapping[str, str | int] = field(default_factory=dict)
    resume_id: str | None = None


@dataclass(frozen=True, slots=True)
class AgentResult:
    """How a job ended.

    `ok` with `summary`: the agent finished; for an agent that edits `checkout` (offline, AgentAPI) the working
    tree holds its change (the caller checks and commits it); for an agent that opens its own pull request
    (Codegen), `pull_request_url` and `head_branch` say where. Not `ok`: `failure` says which kind and `error` says
    what happened in one line for people. `transcript` is what the agent said (kept for `codegen show`), tokens
    and cost are what the agent reported (None when it reports nothing).
    """

    ok: bool
    summary: str = ""
    transcript: str = ""
    failure: AgentFailure | None = None
    error: str | None = None
    external_id: str | None = None
    pull_request_url: str | None = None
    head_branch: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    claims_implementation: bool = True
    """False for the offline agent's record-only change: the PR body must say no feature was implemented."""


StartedCallback = Callable[[str], Awaitable[None]]
"""Called once with the agent's external id (a Codegen run id, an AgentAPI session id) as soon as it exists, so the
caller can record it before waiting (a run resumed after a crash passes it back as `CodingJob.resume_id`)."""


class CodingAgent(Protocol):
    """A coding agent that works on one `CodingJob` at a time.

    Lifecycle: made by the caller for one job (without starting anything; `AgentNotConfigured` when it cannot
    work here), then `run(job)` once; `aclose()` releases what it holds (sessions, connections, processes) and is
    safe to call twice.
    Concurrency: separate agents may run at once, each in its own checkout; one agent runs one job.
    Timeout: `run` ends by `job.timeout` seconds with `AgentResult(ok=False, failure="timeout")`, the agent's
    processes stopped.
    Cancel: cancelling the task awaiting `run` stops the agent (its processes ended, a remote run asked to stop
    where the service allows) before `CancelledError` propagates.
    Errors: everything the agent decides or suffers is an `AgentResult` with `ok=False`; exceptions are only for
    bugs and cancellation. The agent is hostile: it touches nothing outside `job.checkout` and reaches only the
    network endpoints its configuration names.
    """

    @property
    def kind(self) -> AgentKind: ...

    @property
    def label(self) -> str:
        """What ran, for people and records: e.g. "offline", "agentapi:claude", "codegen"."""
        ...

    async def run(self, job: CodingJob, *, on_started: StartedCallback | None = None) -> AgentResult: ...

    async def aclose(self) -> None: ...


class AgentReply(Protocol):
    @property
    def content(self) -> str: ...


class AgentConversation(Protocol):
    """One conversation with a coding agent.

    Lifecycle: obtained already connected; `aclose()` releases it (it does not stop a server-side agent).
    Concurrency: one message at a time; `send_and_wait` returns the whole reply once the agent is idle again.
    Errors: TimeoutError after `timeout` seconds; a TaskmasterError subclass when the agent refuses or exits.
    """

    async def send_and_wait(self, text: str, timeout: float = 600.0) -> AgentReply: ...  # noqa: ASYNC109

    async def aclose(self) -> None: ...
