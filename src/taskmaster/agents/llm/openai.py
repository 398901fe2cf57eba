"""OpenAI Chat Completions with a JSON-schema response format; the same class serves Ollama and compatible servers."""

from __future__ import annotations

from typing import Any, Literal

import openai
from openai.lib._pydantic import to_strict_json_schema
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
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

DEFAULT_BASE_URL = "https://api.openai.com/v1"
LimitField = Literal["max_completion_tokens", "max_tokens"]


class OpenAIProvider(SdkProvider[openai.AsyncOpenAI]):
    """An `LlmProvider` on `AsyncOpenAI`: the answer is the message content, constrained by `response_format`.

    `strict` asks the service to enforce the schema while generating; the schema is then rewritten the way the
    SDK's own `parse()` does (every property required, no additional properties). `limit_field` names the
    request field for the output cap: OpenAI's current models take `max_completion_tokens`, while Ollama and
    most compatible servers read `max_tokens`.
    """

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        name: str = "openai",
        max_retries: int = 2,
        timeout: float = 600.0,
        output_retries: int = 2,
        strict: bool = True,
        limit_field: LimitField = "max_completion_tokens",
    ) -> None:
        super().__init__(
            name=name,
            api_key=api_key,
            model=model,
            base_url=base_url or DEFAULT_BASE_URL,
            max_retries=max_retries,
            timeout=timeout,
            output_retries=output_retries,
        )
        self._strict = strict
        self._limit_field = limit_field

    def _new_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
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
        """Ask once, then once more per invalid answer (up to `output_retries`), with the error as a user turn."""
        json_schema = to_strict_json_schema(schema) if self._strict else schema.model_json_schema()
        response_format: Any = {
            "type": "json_schema",
            "json_schema": {
                "name": schema_name(schema),
                "description": schema_description(schema),
                "schema": json_schema,
                "strict": self._strict,
            },
        }
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": prompt},
        ]
        problem = ""
        for _ in range(self._output_retries + 1):
            response = await self._create(
                model=self._model, messages=messages, response_format=response_format, **{self._limit_field: max_tokens}
            )
            if usage is not None:
                counted = response.usage
                usage.add(counted.prompt_tokens if counted else 0, counted.completion_tokens if counted else 0)
            if not response.choices:
                problem = "the answer had no choices"
                continue
            choice = response.choices[0]
            if choice.message.refusal:
                raise ProviderOutputError(
                    f"{self._name} model {self._model} refused to answer: {choice.message.refusal}", provider=self._name
                )
            content = choice.message.content or ""
            try:
                return schema.model_validate_json(content)
            except ValidationError as exc:
                problem = validation_feedback(exc)
            truncated = choice.finish_reason == "length"
            cut = " Your answer was cut off by the output token limit: make it shorter." if truncated else ""
            messages.append({"role": "assistant", "content": content})
            messages.append(
                {
                    "role": "user",
                    "content": f"That answer was not valid JSON for the schema:\n{problem}\n{cut}\n"
                    "Answer again with only the corrected JSON object.",
                }
            )
        raise self._gave_up(schema, problem)

    async def _create(self, **params: Any) -> ChatCompletion:
        """One Chat Completions call (the SDK retries transport errors, 429 and 5xx); its errors become ours."""
        try:
            response: ChatCompletion = await self._sdk().chat.completions.create(**params)
        except openai.APIStatusError as exc:
            # `from None`: the SDK's exception holds the request, whose headers carry the API key.
            raise self._status_error(exc.status_code, exc.body, exc.message, exc.request_id) from None
        except openai.APIConnectionError as exc:
            raise self._unreachable(exc.message) from None
        return response
