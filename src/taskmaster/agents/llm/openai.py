"""OpenAI Chat Completions with a JSON-schema response format; the same class serves Ollama and compatible servers."""

from __future__ import annotations

from typing import Any, Literal, Unpack

import openai
from openai.lib._pydantic import to_strict_json_schema
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from openai.types.chat.chat_completion import Choice
from pydantic import BaseModel

from taskmaster.agents.llm.base import (
    TRUNCATED_NOTE,
    ProviderOptions,
    Reply,
    SdkProvider,
    schema_description,
    schema_name,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
LimitField = Literal["max_completion_tokens", "max_tokens"]


class OpenAIProvider(SdkProvider[openai.AsyncOpenAI]):
    """An `LlmProvider` on `AsyncOpenAI`: the answer is the message content, constrained by `response_format`; an
    invalid one is sent back in a user turn.

    `strict` asks the service to enforce the schema while generating; the schema is then rewritten the way the
    SDK's own `parse()` does (every property required, no additional properties). `limit_field` names the
    request field for the output cap: OpenAI's current models take `max_completion_tokens`, while Ollama and
    most compatible servers read `max_tokens`.
    """

    default_name = "openai"
    default_base_url = DEFAULT_BASE_URL
    sdk_errors = (openai.APIStatusError, openai.APIConnectionError)

    def __init__(
        self,
        *,
        strict: bool = True,
        limit_field: LimitField = "max_completion_tokens",
        **options: Unpack[ProviderOptions],
    ) -> None:
        super().__init__(**options)
        self._strict = strict
        self._limit_field = limit_field

    def _new_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(**self._client_options())

    def _exchange(self, *, system: str, prompt: str, schema: type[BaseModel], max_tokens: int) -> _JsonExchange:
        json_schema = to_strict_json_schema(schema) if self._strict else schema.model_json_schema()
        response_format = {
            "type": "json_schema",
            "json_schema": {
                "name": schema_name(schema),
                "description": schema_description(schema),
                "schema": json_schema,
                "strict": self._strict,
            },
        }
        params = {"model": self.model, "response_format": response_format, self._limit_field: max_tokens}
        return _JsonExchange(self, params=params, system=system, prompt=prompt)


class _JsonExchange:
    """One `structured` call on Chat Completions: the answer is the first choice's content, a JSON text."""

    def __init__(self, provider: OpenAIProvider, *, params: dict[str, Any], system: str, prompt: str) -> None:
        self._provider = provider
        self._params = params
        self._messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": prompt},
        ]
        self._choice: Choice | None = None

    async def ask(self) -> Reply:
        provider = self._provider
        create = provider._sdk().chat.completions.create
        response: ChatCompletion = await provider._send(create(messages=self._messages, **self._params))
        counted = response.usage
        tokens_in, tokens_out = (counted.prompt_tokens, counted.completion_tokens) if counted else (0, 0)
        self._choice = response.choices[0] if response.choices else None
        if self._choice is None:
            return Reply(tokens_in, tokens_out, problem="the answer had no choices")
        message = self._choice.message
        return Reply(tokens_in, tokens_out, answer=message.content or "", refusal=message.refusal or None)

    def correct(self, problem: str) -> None:
        if self._choice is None:
            return
        cut = TRUNCATED_NOTE if self._choice.finish_reason == "length" else ""
        self._messages.append({"role": "assistant", "content": self._choice.message.content or ""})
        self._messages.append(
            {
                "role": "user",
                "content": f"That answer was not valid JSON for the schema:\n{problem}\n{cut}\n"
                "Answer again with only the corrected JSON object.",
            }
        )
