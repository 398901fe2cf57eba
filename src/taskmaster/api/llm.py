"""The LLM provider a request asks for (`offline` means none), closed when the request is done with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from taskmaster.api.deps import Services


@asynccontextmanager
async def llm_model(services: Services, provider: str, model: str | None) -> AsyncIterator[Any]:
    """Yield the configured provider's client, or None for the offline planner."""
    if provider == "offline":
        yield None
        return
    from taskmaster.agents.llm import provider_from_settings

    client = provider_from_settings(services.settings, provider, model)  # type: ignore[arg-type]
    try:
        yield client
    finally:
        await client.aclose()
