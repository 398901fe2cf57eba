"""What the pipeline engine needs from a coding agent, whoever runs it (AgentAPI today, Codegen later)."""

from __future__ import annotations

from typing import Protocol


class AgentReply(Protocol):
    @property
    def content(self) -> str: ...


class CodingAgent(Protocol):
    """One conversation with a coding agent.

    Lifecycle: obtained already connected; `aclose()` releases it (it does not stop a server-side agent).
    Concurrency: one message at a time; `send_and_wait` returns the whole reply once the agent is idle again.
    Errors: TimeoutError after `timeout` seconds; a TaskmasterError subclass when the agent refuses or exits.
    """

    async def send_and_wait(self, text: str, timeout: float = 600.0) -> AgentReply: ...  # noqa: ASYNC109

    async def aclose(self) -> None: ...
