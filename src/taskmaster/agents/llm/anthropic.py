"""Anthropic's Messages API: structured output by forcing one tool whose input schema is the answer's schema."""

from __future__ import annotations

from typing import Any

import anthropic
from anthropic.types import Message, MessageParam, ToolUseBlock
from pydantic import BaseModel

from taskmaster.agents.llm.base import TRUNCATED_NOTE, Reply, SdkProvider, schema_description, schema_name

DEFAULT_BASE_URL = "https://api.anthropic.com"


class AnthropicProvider(SdkProvider[anthropic.AsyncAnthropic]):
    """An `LlmProvider` on `AsyncAnthropic`: the answer is the input of a tool the model is made to call; an invalid
    one is sent back as the tool's error result."""

    default_name = "anthropic"
    default_base_url = DEFAULT_BASE_URL
    sdk_errors = (anthropic.APIStatusError, anthropic.APIConnectionError)

    def _new_client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(**self._client_options())

    def _exchange(self, *, system: str, prompt: str, schema: type[BaseModel], max_tokens: int) -> _ToolExchange:
        tool = schema_name(schema)
        spec = {"name": tool, "description": schema_description(schema), "input_schema": schema.model_json_schema()}
        params = {
            "model": self.model,
            "max_tokens": max_tokens,
            "system": system,
            "tools": [spec],
            "tool_choice": {"type": "tool", "name": tool, "disable_parallel_tool_use": True},
        }
        return _ToolExchange(self, tool=tool, params=params, prompt=prompt)


class _ToolExchange:
    """One `structured` call on the Messages API: the answer is the input of the one tool the model must call."""

    def __init__(self, provider: AnthropicProvider, *, tool: str, params: dict[str, Any], prompt: str) -> None:
        self._provider = provider
        self._tool = tool
        self._params = params
        self._messages: list[MessageParam] = [{"role": "user", "content": prompt}]
        self._last: Message | None = None
        self._call: ToolUseBlock | None = None

    async def ask(self) -> Reply:
        provider = self._provider
        response: Message = await provider._send(
            provider._sdk().messages.create(messages=self._messages, **self._params)
        )
        self._last = response
        self._call = next((b for b in response.content if isinstance(b, ToolUseBlock) and b.name == self._tool), None)
        return Reply(
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            answer=None if self._call is None else self._call.input,
            problem="the answer did not call the tool",
            refusal="" if response.stop_reason == "refusal" else None,
        )

    def correct(self, problem: str) -> None:
        if self._last is None or not self._last.content:
            return
        cut = TRUNCATED_NOTE if self._last.stop_reason == "max_tokens" else ""
        text = f"That answer was not valid:\n{problem}\n{cut}\nCall the `{self._tool}` tool again with corrected input."
        self._messages.append({"role": "assistant", "content": self._last.content})
        if self._call is None:
            self._messages.append({"role": "user", "content": text})
        else:
            result: Any = {"type": "tool_result", "tool_use_id": self._call.id, "is_error": True, "content": text}
            self._messages.append({"role": "user", "content": [result]})
