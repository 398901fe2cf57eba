"""The fake Anthropic and OpenAI servers of `tests/agents/llm`, for the task tests that plan with a model."""

from __future__ import annotations

from tests.agents.llm.conftest import _anthropic_server, _openai_server, anthropic_fake, openai_fake

__all__ = ["_anthropic_server", "_openai_server", "anthropic_fake", "openai_fake"]
