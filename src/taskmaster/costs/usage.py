"""Token counts a caller's model calls add up (here, below both the agents that fill them and the domains that
record them; `agents.llm.base` re-exports it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    """Tokens a caller's model calls used, added up across calls and repair rounds (pass one to `structured`).

    Mutable on purpose: one `Usage` is filled by every request a call makes, including those whose answer failed
    validation, so the cost of a repair round is never lost.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0

    def add(self, input_tokens: int | None, output_tokens: int | None) -> None:
        self.input_tokens += input_tokens or 0
        self.output_tokens += output_tokens or 0
        self.requests += 1
