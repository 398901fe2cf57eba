"""Anthropic's Messages API: structured output by forcing one tool whose input schema is the answer's schema."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import anthropic
from anthropic.types import MessageParam, ToolUseBlock
from pydantic import ValidationError

from taskmaster.agents.llm.base import (
    DEFAULT_MAX_TOKENS,
    ProviderError,
    ProviderOutputError,
    T,
    redact,
    schema_description,
    schema_name,
    status_detail,
    validation_feedback,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"


class AnthropicProvider:
    """An `LlmProvider` on `AsyncAnthropic`: the answer is the input of a tool the model is made to call."""

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        max_retries: int = 2,
        timeout: float = 600.0,
        output_retries: int = 2,
    ) -> None:
        self._api_key = api_key
        self._model = model
        # Passed explicitly, so the SDK does not fall back to its own reading of the environment.
        self._base_url = base_url or DEFAULT_BASE_URL
        self._max_retries = max_retries
        self._timeout = timeout
        self._output_retries = output_retries
        self._client: anthropic.AsyncAnthropic | None = None

    def __repr__(self) -> str:
        return f"AnthropicProvider(model={self._model!r}, base_url={self._base_url!r})"

    @property
    def name(self) -> str:
        return "anthropic"

    @property
    def model(self) -> str:
        return self._model

    def _sdk(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            self._client = anthropic.AsyncAnthropic(
                api_key=self._api_key, base_url=self._base_url, max_retries=self._max_retries, timeout=self._timeout
            )
        return self._client

    async def structured(
        self,
        *,
        system: str,
        prompt: str,
        schema: type[T],
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> T:
        """Ask once, then once more per invalid answer (up to `output_retries`), with the error as a tool result."""
        tool = schema_name(schema)
        tools: list[Any] = [
            {"name": tool, "description": schema_description(schema), "input_schema": schema.model_json_schema()}
        ]
        choice: Any = {"type": "tool", "name": tool, "disable_parallel_tool_use": True}
        messages: list[MessageParam] = [{"role": "user", "content": prompt}]
        problem = ""
        for _ in range(self._output_retries + 1):
            response = await self._create(
                model=self._model,
                max_tokens=max_tokens,
                system=system,
                messages=messages,
                tools=tools,
                tool_choice=choice,
            )
            if response.stop_reason == "refusal":
                raise ProviderOutputError(f"anthropic model {self._model} refused to answer", provider=self.name)
            call = next((b for b in response.content if isinstance(b, ToolUseBlock) and b.name == tool), None)
            truncated = response.stop_reason == "max_tokens"
            if call is None:
                problem = "the answer did not call the tool"
                if response.content:
                    messages.append({"role": "assistant", "content": response.content})
                    messages.append({"role": "user", "content": _retry_text(tool, problem, truncated)})
                continue
            try:
                return schema.model_validate(call.input)
            except ValidationError as exc:
                problem = validation_feedback(exc)
            messages.append({"role": "assistant", "content": response.content})
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": call.id,
                            "is_error": True,
                            "content": _retry_text(tool, problem, truncated),
                        }
                    ],
                }
            )
        raise ProviderOutputError(
            f"anthropic model {self._model} gave no valid {schema.__name__} in {self._output_retries + 1} attempts;"
            f" last problem: {problem}",
            provider=self.name,
        )

    async def _create(self, **params: Any) -> anthropic.types.Message:
        """One Messages API call (the SDK retries transport errors, 429 and 5xx); its errors become ours."""
        try:
            response: anthropic.types.Message = await self._sdk().messages.create(**params)
        except anthropic.APIStatusError as exc:
            detail = redact(status_detail(self.name, exc.status_code, exc.body, exc.message), [self._api_key])
            # `from None`: the SDK's exception holds the request, whose headers carry the API key.
            raise ProviderError(detail, provider=self.name, status=exc.status_code, request_id=exc.request_id) from None
        except anthropic.APIConnectionError as exc:
            detail = redact(f"anthropic at {self._base_url} could not be reached: {exc.message}", [self._api_key])
            raise ProviderError(detail, provider=self.name) from None
        return response

    async def aclose(self) -> None:
        """Close the SDK client's connections (a later call would open new ones)."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> AnthropicProvider:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _retry_text(tool: str, problem: str, truncated: bool) -> str:
    cut = " Your answer was cut off by the output token limit: make it shorter." if truncated else ""
    return f"That answer was not valid:\n{problem}\n{cut}\nCall the `{tool}` tool again with corrected input."
