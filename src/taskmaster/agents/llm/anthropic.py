"""Anthropic's Messages API: structured output by forcing one tool whose input schema is the answer's schema."""

from __future__ import annotations

from typing import Any

import anthropic
from anthropic.types import MessageParam, ToolUseBlock
from pydantic import ValidationError

from taskmaster.agents.llm.base import (
    DEFAULT_MAX_TOKENS,
    ProviderOutputError,
    SdkProvider,
    T,
    Usage,
    schema_description,
    schema_name,
    validation_feedback,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"


class AnthropicProvider(SdkProvider[anthropic.AsyncAnthropic]):
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
        super().__init__(
            name="anthropic",
            api_key=api_key,
            model=model,
            base_url=base_url or DEFAULT_BASE_URL,
            max_retries=max_retries,
            timeout=timeout,
            output_retries=output_retries,
        )

    def _new_client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=self._api_key, base_url=self._base_url, max_retries=self._max_retries, timeout=self._timeout
        )

    async def structured(
        self,
        *,
        system: str,
        prompt: str,
        schema: type[T],
        max_tokens: int = DEFAULT_MAX_TOKENS,
        usage: Usage | None = None,
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
            if usage is not None:
                usage.add(response.usage.input_tokens, response.usage.output_tokens)
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
        raise self._gave_up(schema, problem)

    async def _create(self, **params: Any) -> anthropic.types.Message:
        """One Messages API call (the SDK retries transport errors, 429 and 5xx); its errors become ours."""
        try:
            response: anthropic.types.Message = await self._sdk().messages.create(**params)
        except anthropic.APIStatusError as exc:
            # `from None`: the SDK's exception holds the request, whose headers carry the API key.
            raise self._status_error(exc.status_code, exc.body, exc.message, exc.request_id) from None
        except anthropic.APIConnectionError as exc:
            raise self._unreachable(exc.message) from None
        return response


def _retry_text(tool: str, problem: str, truncated: bool) -> str:
    cut = " Your answer was cut off by the output token limit: make it shorter." if truncated else ""
    return f"That answer was not valid:\n{problem}\n{cut}\nCall the `{tool}` tool again with corrected input."
