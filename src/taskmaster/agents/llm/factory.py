"""Build the provider a user chose from the settings tree; the SDK modules are imported only here, on demand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal, get_args

from taskmaster.agents.llm.base import LlmProvider, ProviderNotConfigured
from taskmaster.config.settings import Settings
from taskmaster.core.errors import InvalidInput

ProviderName = Literal["anthropic", "openai", "ollama"]
PROVIDER_NAMES: tuple[ProviderName, ...] = get_args(ProviderName)
DEFAULT_MODELS: dict[ProviderName, str] = {
    "anthropic": "claude-sonnet-4-6",
    "openai": "gpt-5.4-mini",
    "ollama": "llama3.1",
}
OLLAMA_BASE_URL = "http://localhost:11434/v1"
# Ollama ignores the key, but the OpenAI SDK refuses to start without one; the OpenAI key is never sent there.
_OLLAMA_PLACEHOLDER_KEY = "ollama"


def provider_from_settings(
    settings: Settings,
    name: ProviderName,
    model: str | None = None,
    *,
    base_url: str | None = None,
    max_retries: int = 2,
    output_retries: int = 2,
    timeout: float = 600.0,
) -> LlmProvider:
    """The provider `name` with `settings.llm`'s key and base URL (`base_url` overrides the latter).

    `max_retries` goes to the SDK (transport errors, 429, 5xx, with its own backoff and `retry-after`);
    `output_retries` is how many times an invalid answer is sent back with its validation error. Ollama uses
    `base_url`, else `http://localhost:11434/v1`, and no key (the OpenAI one is not sent to it). Raises
    `ProviderNotConfigured` when the provider's API key is missing. No network access happens here.
    """
    llm = settings.llm
    if name == "anthropic":
        if llm.anthropic_api_key is None:
            raise ProviderNotConfigured("the anthropic provider needs ANTHROPIC_API_KEY", provider=name)
        from taskmaster.agents.llm.anthropic import AnthropicProvider

        return AnthropicProvider(
            api_key=llm.anthropic_api_key.get_secret_value(),
            model=model or DEFAULT_MODELS[name],
            base_url=base_url or llm.anthropic_base_url,
            max_retries=max_retries,
            output_retries=output_retries,
            timeout=timeout,
        )
    if name == "openai" or name == "ollama":
        from taskmaster.agents.llm.openai import OpenAIProvider

        if name == "openai":
            if llm.openai_api_key is None:
                raise ProviderNotConfigured("the openai provider needs OPENAI_API_KEY", provider=name)
            key = llm.openai_api_key.get_secret_value()
            url = base_url or llm.openai_base_url
        else:
            key = _OLLAMA_PLACEHOLDER_KEY
            url = base_url or OLLAMA_BASE_URL
        return OpenAIProvider(
            api_key=key,
            model=model or DEFAULT_MODELS[name],
            base_url=url,
            name=name,
            max_retries=max_retries,
            output_retries=output_retries,
            timeout=timeout,
            limit_field="max_completion_tokens" if name == "openai" else "max_tokens",
        )
    raise ProviderNotConfigured(f"unknown LLM provider {name!r}; choose one of {', '.join(PROVIDER_NAMES)}")


PLANNERS: tuple[str, ...] = ("offline", *PROVIDER_NAMES)
"""What a user may choose for planning: the offline parser, or a provider."""


@asynccontextmanager
async def planning_model(
    settings: Settings, planner: str, model: str | None = None
) -> AsyncIterator[LlmProvider | None]:
    """The provider for `planner`, closed on exit; None for "offline". Unknown names raise `InvalidInput`."""
    if planner not in PLANNERS:
        raise InvalidInput(f"the planner must be one of {', '.join(PLANNERS)} (got {planner!r})")
    if planner == "offline":
        yield None
        return
    provider = provider_from_settings(settings, planner, model)  # type: ignore[arg-type]
    try:
        yield provider
    finally:
        await provider.aclose()
