"""LLM providers behind one small protocol: structured output validated by pydantic (Anthropic, OpenAI, Ollama).

The SDKs are imported only when a provider is built, so importing this package stays cheap.
"""

from __future__ import annotations

from taskmaster.agents.llm.base import (
    LlmProvider,
    ProviderError,
    ProviderNotConfigured,
    ProviderOutputError,
)
from taskmaster.agents.llm.factory import (
    DEFAULT_MODELS,
    PLANNERS,
    ProviderName,
    planning_model,
    provider_from_settings,
)

__all__ = [
    "DEFAULT_MODELS",
    "PLANNERS",
    "LlmProvider",
    "ProviderError",
    "ProviderName",
    "ProviderNotConfigured",
    "ProviderOutputError",
    "planning_model",
    "provider_from_settings",
]
