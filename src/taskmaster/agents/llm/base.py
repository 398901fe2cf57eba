"""What Taskmaster needs from a large language model: one validated, structured answer per call."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Required, Self, TypedDict, TypeVar, cast

from pydantic import BaseModel, ValidationError

from taskmaster.core.errors import InvalidInput, Unavailable
from taskmaster.core.redact import redact

# Defined in `costs`, below both the providers that fill it and the domains (tasks) that record it.
from taskmaster.costs.usage import Usage as Usage

T = TypeVar("T", bound=BaseModel)

DEFAULT_MAX_TOKENS = 8192
# Validation messages go back to the model; past this size they cost tokens without helping it.
_FEEDBACK_LIMIT = 4000
TRUNCATED_NOTE = " Your answer was cut off by the output token limit: make it shorter."
"""Added to a correction when the invalid answer was cut off by `max_tokens`."""


class LlmProvider(Protocol):
    """A model that answers with data shaped by a pydantic model (tool use or JSON-schema response format).

    Lifecycle: built by `provider_from_settings` (or directly) without network access; the SDK client is made on
    the first call and kept, so one provider serves many calls; `aclose()` releases its connections.
    Concurrency: `structured` may be awaited from many tasks at once; each call is an independent conversation.
    Callers bound their own parallelism (the SDK's connection pool is not a rate limiter).
    Errors: transport failures, 429 and 5xx are retried by the SDK itself (its `max_retries`); what is left
    surfaces as `ProviderError`. An answer that fails validation is sent back to the model with the validation
    error, up to `output_retries` times, then raises `ProviderOutputError`. Messages never contain API keys.
    """

    @property
    def name(self) -> str:
        """Which service: "anthropic", "openai" or "ollama"."""
        ...

    @property
    def model(self) -> str:
        """The model asked, as the service names it."""
        ...

    async def structured(
        self,
        *,
        system: str,
        prompt: str,
        schema: type[T],
        max_tokens: int = DEFAULT_MAX_TOKENS,
        usage: Usage | None = None,
    ) -> T:
        """Ask `prompt` under `system` instructions and return the answer validated as `schema`; the tokens of every
        request it made are added to `usage` when one is given."""
        ...

    async def aclose(self) -> None:
        """Close the SDK client's connections; the provider may not be used afterwards."""
        ...


class ProviderError(Unavailable):
    """The model service could not give an answer: unreachable, rate limited past retries, or it refused the call."""

    code = "llm_provider_error"
    title = "Language model unavailable"


class ProviderOutputError(ProviderError):
    """The model kept answering with data that does not fit the requested schema."""

    code = "llm_invalid_output"
    title = "Language model gave no valid answer"


class ProviderNotConfigured(InvalidInput):
    """The provider asked for lacks its configuration (an API key)."""

    code = "llm_not_configured"
    title = "Language model not configured"


def validation_feedback(error: ValidationError) -> str:
    """The validation error as short lines a model can act on: where, and what was wrong."""
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"]) or "(root)"
        lines.append(f"- {where}: {item['msg']}")
    text = "\n".join(lines)
    return text if len(text) <= _FEEDBACK_LIMIT else text[:_FEEDBACK_LIMIT] + "\n- …"


def schema_name(schema: type[BaseModel]) -> str:
    """A name both services accept for a tool or a response format: ``[a-zA-Z0-9_-]{1,64}``."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", schema.__name__).lower()
    return re.sub(r"[^a-z0-9_-]", "_", snake)[:64] or "answer"


def schema_description(schema: type[BaseModel]) -> str:
    """The model's docstring (what the answer is for), or a generic line."""
    doc = (schema.__doc__ or "").strip()
    return doc.split("\n\n", 1)[0] if doc else f"Return the answer as a {schema.__name__} object."


def status_detail(provider: str, status: int, body: object, fallback: str) -> str:
    """A one-line message for an HTTP error answer: the service's own error text when its body has one."""
    message = fallback
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
        elif isinstance(error, str):
            message = error
    return f"{provider} answered HTTP {status}: {message}"


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply of the model, in the terms `SdkProvider.structured` needs whatever the wire format."""

    input_tokens: int
    output_tokens: int
    answer: object = None
    """The answer's data, or its JSON text (a `str`); None when the reply holds none."""
    problem: str = ""
    """Why the reply holds no answer, for the model to read."""
    refusal: str | None = None
    """Set when the model declined to answer: its reason, or "" when it gave none."""


class Exchange(Protocol):
    """One `structured` call's conversation in a provider's wire format: the messages so far and how to ask."""

    async def ask(self) -> Reply:
        """Send the conversation; the model's reply."""
        ...

    def correct(self, problem: str) -> None:
        """Add the last reply and what was wrong with it (`problem`) to the conversation, for the next `ask`."""
        ...


class ProviderOptions(TypedDict, total=False):
    """What every SDK-backed provider is built with (see `SdkProvider`)."""

    api_key: Required[str]
    model: Required[str]
    base_url: str | None
    name: str | None
    max_retries: int
    timeout: float
    output_retries: int


class _SdkError(Protocol):
    """What both SDKs' errors carry (the SDKs are generated from one template)."""

    message: str


class _StatusError(_SdkError, Protocol):
    """What both SDKs' `APIStatusError` carry besides."""

    status_code: int
    body: object
    request_id: str | None


class _Closable(Protocol):
    async def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=_Closable)
R = TypeVar("R")


class SdkProvider(Generic[ClientT]):
    """What the SDK-backed providers share: identity, a client built on first use, closing, their errors, and the
    `structured` loop that asks again after an invalid answer.

    Subclasses name themselves (`default_name`, `default_base_url`), their SDK's errors (`sdk_errors`), build the
    client (`_new_client`) and speak their wire format in an `Exchange` (`_exchange`). `base_url` and `name` default
    to the class's; `max_retries` is the SDK's own (transport errors, 429, 5xx); `output_retries` is how often an
    invalid answer is sent back with what was wrong.
    """

    default_name: ClassVar[str]
    default_base_url: ClassVar[str]
    sdk_errors: ClassVar[tuple[type[Exception], type[Exception]]]
    """The SDK's `APIStatusError` and `APIConnectionError`."""

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        name: str | None = None,
        max_retries: int = 2,
        timeout: float = 600.0,
        output_retries: int = 2,
    ) -> None:
        self._name = name or self.default_name
        self._api_key = api_key
        self._model = model
        # Passed explicitly, so the SDK does not fall back to its own reading of the environment.
        self._base_url = base_url or self.default_base_url
        self._max_retries = max_retries
        self._timeout = timeout
        self._output_retries = output_retries
        self._client: ClientT | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self._model!r}, base_url={self._base_url!r})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def model(self) -> str:
        return self._model

    async def structured(
        self,
        *,
        system: str,
        prompt: str,
        schema: type[T],
        max_tokens: int = DEFAULT_MAX_TOKENS,
        usage: Usage | None = None,
    ) -> T:
        """Ask once, then once more per invalid answer (up to `output_retries`), telling the model what was wrong."""
        exchange = self._exchange(system=system, prompt=prompt, schema=schema, max_tokens=max_tokens)
        problem = ""
        for _ in range(self._output_retries + 1):
            reply = await exchange.ask()
            if usage is not None:
                usage.add(reply.input_tokens, reply.output_tokens)
            if reply.refusal is not None:
                reason = f": {reply.refusal}" if reply.refusal else ""
                raise ProviderOutputError(
                    f"{self._name} model {self._model} refused to answer{reason}", provider=self._name
                )
            if reply.answer is None:
                problem = reply.problem
            else:
                try:
                    if isinstance(reply.answer, str):
                        return schema.model_validate_json(reply.answer)
                    return schema.model_validate(reply.answer)
                except ValidationError as exc:
                    problem = validation_feedback(exc)
            exchange.correct(problem)
        raise ProviderOutputError(
            f"{self._name} model {self._model} gave no valid {schema.__name__} in {self._output_retries + 1} attempts;"
            f" last problem: {problem}",
            provider=self._name,
        )

    def _exchange(self, *, system: str, prompt: str, schema: type[BaseModel], max_tokens: int) -> Exchange:
        raise NotImplementedError

    def _new_client(self) -> ClientT:
        raise NotImplementedError

    def _client_options(self) -> dict[str, Any]:
        """The SDK client's options: both SDKs take the same four."""
        return {
            "api_key": self._api_key,
            "base_url": self._base_url,
            "max_retries": self._max_retries,
            "timeout": self._timeout,
        }

    def _sdk(self) -> ClientT:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    async def _send(self, request: Awaitable[R]) -> R:
        """One SDK call (the SDK retries transport errors, 429 and 5xx); its errors become `ProviderError`s."""
        status_error, connection_error = self.sdk_errors
        try:
            return await request
        except status_error as exc:
            failed = cast(_StatusError, exc)
            detail = redact(status_detail(self._name, failed.status_code, failed.body, failed.message), [self._api_key])
            # `from None`: the SDK's exception holds the request, whose headers carry the API key.
            raise ProviderError(
                detail, provider=self._name, status=failed.status_code, request_id=failed.request_id
            ) from None
        except connection_error as exc:
            reason = cast(_SdkError, exc).message
            detail = redact(f"{self._name} at {self._base_url} could not be reached: {reason}", [self._api_key])
            raise ProviderError(detail, provider=self._name) from None

    async def aclose(self) -> None:
        """Close the SDK client's connections (a later call would open new ones)."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
