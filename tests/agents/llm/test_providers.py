"""The real Anthropic and OpenAI SDKs against fake servers on loopback: requests, validation repair, retries, errors."""

from __future__ import annotations

import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from taskmaster.agents.llm import (
    LlmProvider,
    ProviderError,
    ProviderNotConfigured,
    ProviderOutputError,
    provider_from_settings,
)
from taskmaster.core.errors import TaskmasterError, Unavailable
from tests.agents.llm.fakes import ANTHROPIC_KEY, OPENAI_KEY, FakeLlm, Status, Text, turns
from tests.conftest import make_settings


class Verdict(BaseModel):
    """A verdict on a change."""

    label: Literal["approve", "reject"]
    score: int = Field(ge=1, le=5)
    notes: str | None = None


Kind = Literal["anthropic", "openai"]


def provider(kind: str, url: str, state_dir: Path, **options: Any) -> LlmProvider:
    """The provider built the way the app builds it: from settings read from the environment."""
    if kind == "anthropic":
        settings = make_settings(state_dir, ANTHROPIC_API_KEY=ANTHROPIC_KEY, ANTHROPIC_BASE_URL=url)
    else:
        settings = make_settings(state_dir, OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=url)
    return provider_from_settings(settings, "anthropic" if kind == "anthropic" else "openai", "test-model", **options)


@pytest.fixture(params=["anthropic", "openai"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake(kind: str, request: pytest.FixtureRequest) -> tuple[str, FakeLlm]:
    server: tuple[str, FakeLlm] = request.getfixturevalue(f"{kind}_fake")
    return server


async def test_anthropic_request_forces_one_tool_whose_input_schema_is_the_answer_schema(
    anthropic_fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, fake = anthropic_fake
    fake.reset(lambda body: {"label": "approve", "score": 4, "notes": "fine"})
    llm = provider("anthropic", url, state_dir)
    answer = await llm.structured(system="Judge the change.", prompt="Diff: +1 line", schema=Verdict, max_tokens=512)
    await llm.aclose()

    assert answer == Verdict(label="approve", score=4, notes="fine")
    [sent] = fake.requests
    assert sent.path == "/v1/messages"
    # anthropic 2.x sends the key as a bearer token; the API also takes it as `x-api-key`.
    assert sent.headers.get("x-api-key", sent.headers.get("authorization")) in (
        ANTHROPIC_KEY,
        f"Bearer {ANTHROPIC_KEY}",
    )
    assert sent.headers["anthropic-version"]
    body = sent.body
    assert body["model"] == "test-model"
    assert body["max_tokens"] == 512
    assert body["system"] == "Judge the change."
    assert body["messages"] == [{"role": "user", "content": "Diff: +1 line"}]
    [tool] = body["tools"]
    assert tool["name"] == "verdict"
    assert tool["description"] == "A verdict on a change."
    assert tool["input_schema"] == Verdict.model_json_schema()
    assert body["tool_choice"] == {"type": "tool", "name": "verdict", "disable_parallel_tool_use": True}


async def test_openai_request_carries_a_strict_json_schema_response_format(
    openai_fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, fake = openai_fake
    fake.reset(lambda body: {"label": "reject", "score": 2, "notes": None})
    llm = provider("openai", url, state_dir)
    answer = await llm.structured(system="Judge the change.", prompt="Diff: -1 line", schema=Verdict, max_tokens=256)
    await llm.aclose()

    assert answer == Verdict(label="reject", score=2)
    [sent] = fake.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    body = sent.body
    assert body["model"] == "test-model"
    assert body["max_completion_tokens"] == 256
    assert "max_tokens" not in body
    assert body["messages"] == [
        {"role": "system", "content": "Judge the change."},
        {"role": "user", "content": "Diff: -1 line"},
    ]
    response_format = body["response_format"]
    assert response_format["type"] == "json_schema"
    spec = response_format["json_schema"]
    assert spec["name"] == "verdict"
    assert spec["strict"] is True
    schema = spec["schema"]
    # Strict mode: every property required, nothing else allowed, the constraints kept.
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == ["label", "notes", "score"]
    assert schema["properties"]["label"]["enum"] == ["approve", "reject"]
    assert (schema["properties"]["score"]["minimum"], schema["properties"]["score"]["maximum"]) == (1, 5)


async def test_ollama_uses_the_openai_wire_format_with_max_tokens_and_never_the_openai_key(
    openai_fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, fake = openai_fake
    fake.reset(lambda body: {"label": "approve", "score": 5}, api_key="ollama")
    settings = make_settings(state_dir, OPENAI_API_KEY=OPENAI_KEY)
    llm = provider_from_settings(settings, "ollama", base_url=url)
    assert (llm.name, llm.model) == ("ollama", "llama3.1")
    answer = await llm.structured(system="s", prompt="p", schema=Verdict, max_tokens=100)
    await llm.aclose()

    assert answer.score == 5
    [sent] = fake.requests
    assert sent.body["max_tokens"] == 100
    assert "max_completion_tokens" not in sent.body
    assert sent.body["response_format"]["type"] == "json_schema"
    assert sent.headers["authorization"] == "Bearer ollama"  # a placeholder: the OpenAI key stays with OpenAI


async def test_an_invalid_answer_is_sent_back_with_its_validation_error_and_the_second_answer_is_used(
    kind: str, fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, server = fake
    server.reset(
        lambda body: {"label": "approve", "score": 9} if turns(body) == 1 else {"label": "approve", "score": 3}
    )
    llm = provider(kind, url, state_dir)
    answer = await llm.structured(system="s", prompt="judge", schema=Verdict)
    await llm.aclose()

    assert answer.score == 3
    first, second = server.requests
    messages = second.body["messages"]
    if kind == "anthropic":
        # The bad tool call is replayed, and answered with an error tool result naming the field.
        assert messages[1]["role"] == "assistant"
        [call] = messages[1]["content"]
        assert call["type"] == "tool_use" and call["input"] == {"label": "approve", "score": 9}
        [result] = messages[2]["content"]
        assert result["type"] == "tool_result"
        assert result["tool_use_id"] == call["id"]
        assert result["is_error"] is True
        assert "score" in result["content"] and "less than or equal to 5" in result["content"]
        assert second.body["tools"] == first.body["tools"]
    else:
        assert messages[2] == {"role": "assistant", "content": '{"label": "approve", "score": 9}'}
        assert messages[3]["role"] == "user"
        assert "score" in messages[3]["content"] and "less than or equal to 5" in messages[3]["content"]
        assert second.body["response_format"] == first.body["response_format"]


async def test_openai_answer_that_is_not_json_is_repaired(openai_fake: tuple[str, FakeLlm], state_dir: Path) -> None:
    url, fake = openai_fake
    fake.reset(
        lambda body: (
            Text("Sure! Here it is: {label: approve}") if turns(body) == 1 else {"label": "approve", "score": 1}
        )
    )
    llm = provider("openai", url, state_dir)
    answer = await llm.structured(system="s", prompt="p", schema=Verdict)
    await llm.aclose()

    assert answer.score == 1
    assert "Invalid JSON" in fake.requests[1].body["messages"][-1]["content"]


async def test_anthropic_answer_without_the_tool_call_is_asked_again(
    anthropic_fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, fake = anthropic_fake
    fake.reset(lambda body: Text("I think it is fine.") if turns(body) == 1 else {"label": "approve", "score": 2})
    llm = provider("anthropic", url, state_dir)
    answer = await llm.structured(system="s", prompt="p", schema=Verdict)
    await llm.aclose()

    assert answer.score == 2
    retry = fake.requests[1].body["messages"]
    assert retry[1] == {"role": "assistant", "content": [{"type": "text", "text": "I think it is fine."}]}
    assert "did not call the tool" in retry[2]["content"] and "`verdict`" in retry[2]["content"]


async def test_answers_that_stay_invalid_raise_after_the_output_retries(
    kind: str, fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, server = fake
    server.reset(lambda body: {"label": "maybe", "score": 3})
    llm = provider(kind, url, state_dir, output_retries=1)
    with pytest.raises(ProviderOutputError) as caught:
        await llm.structured(system="s", prompt="p", schema=Verdict)
    await llm.aclose()

    assert len(server.requests) == 2
    assert isinstance(caught.value, Unavailable)
    assert caught.value.code == "llm_invalid_output"
    assert "label" in caught.value.detail and "2 attempts" in caught.value.detail


async def test_a_429_with_retry_after_is_retried_by_the_sdk(
    kind: str, fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, server = fake
    calls = 0

    def brain(body: dict[str, Any]) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return Status(429, "slow down", {"retry-after": "0.3"})
        return {"label": "approve", "score": 5}

    server.reset(brain)
    llm = provider(kind, url, state_dir, max_retries=2)
    started = time.monotonic()
    answer = await llm.structured(system="s", prompt="p", schema=Verdict)
    elapsed = time.monotonic() - started
    await llm.aclose()

    assert answer.score == 5
    first, second = server.requests
    assert second.body == first.body  # the same request again, not a repair turn
    assert second.headers["x-stainless-retry-count"] == "1"
    assert elapsed >= 0.3  # the SDK waited as told


async def test_errors_left_after_sdk_retries_surface_as_provider_errors_without_the_api_key(
    kind: str, fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, server = fake
    key = ANTHROPIC_KEY if kind == "anthropic" else OPENAI_KEY
    # A server that echoes the credential back: the message must still not carry it.
    server.reset(lambda body: Status(503, f"overloaded (request from key {key})", {"retry-after": "0.01"}))
    llm = provider(kind, url, state_dir, max_retries=1)
    with pytest.raises(ProviderError) as caught:
        await llm.structured(system="s", prompt="p", schema=Verdict)
    await llm.aclose()

    assert len(server.requests) == 2  # one try plus the SDK's one retry
    error = caught.value
    assert isinstance(error, TaskmasterError)
    assert error.extra["status"] == 503
    assert error.extra["provider"] == kind
    assert "503" in error.detail and "overloaded" in error.detail and "[redacted]" in error.detail
    rendered = "".join(traceback.format_exception(error)) + repr(error) + repr(error.extra) + repr(llm)
    assert key not in rendered
    assert error.__cause__ is None and error.__suppress_context__


async def test_a_rejected_key_is_a_provider_error_with_the_status(
    kind: str, fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, server = fake
    server.reset(lambda body: Status(401, "invalid x-api-key"))
    llm = provider(kind, url, state_dir)
    with pytest.raises(ProviderError) as caught:
        await llm.structured(system="s", prompt="p", schema=Verdict)
    await llm.aclose()

    assert len(server.requests) == 1  # 4xx other than 408/409/429 is not retried
    assert caught.value.extra["status"] == 401
    assert "invalid x-api-key" in caught.value.detail


async def test_an_unreachable_server_is_a_provider_error(kind: str, state_dir: Path) -> None:
    from tests.support import free_port

    base = f"http://127.0.0.1:{free_port()}" + ("" if kind == "anthropic" else "/v1")
    llm = provider(kind, base, state_dir, max_retries=0)
    with pytest.raises(ProviderError, match="could not be reached"):
        await llm.structured(system="s", prompt="p", schema=Verdict)
    await llm.aclose()


def test_a_provider_without_its_api_key_is_not_configured(state_dir: Path) -> None:
    settings = make_settings(state_dir)
    for name in ("anthropic", "openai"):
        with pytest.raises(ProviderNotConfigured, match=f"{name.upper()}_API_KEY"):
            provider_from_settings(settings, name)  # type: ignore[arg-type]
    assert provider_from_settings(settings, "ollama").name == "ollama"


def test_importing_the_package_or_building_a_provider_loads_no_sdk_and_opens_no_connection(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import taskmaster.agents.llm as llm\n"
        "assert 'anthropic' not in sys.modules and 'openai' not in sys.modules, 'SDK imported at import time'\n"
        "from taskmaster.config import load_settings\n"
        f"s = load_settings({{'TASKMASTER_HOME': {str(tmp_path)!r}, 'ANTHROPIC_API_KEY': 'k' * 8,"
        " 'ANTHROPIC_BASE_URL': 'http://192.0.2.1:9'}, config_file=None)\n"
        "p = llm.provider_from_settings(s, 'anthropic')\n"
        "assert p._client is None, 'client built before the first call'\n"
        "print(p.name, p.model)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["anthropic", "claude-sonnet-4-6"]


async def test_planning_model_is_none_offline_and_refuses_unknown_planners(tmp_path: Path) -> None:
    from taskmaster.agents.llm import planning_model
    from taskmaster.core.errors import InvalidInput
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, ANTHROPIC_API_KEY=ANTHROPIC_KEY)
    async with planning_model(settings, "offline") as none:
        assert none is None
    async with planning_model(settings, "anthropic", "claude-test") as model:
        assert model is not None and (model.name, model.model) == ("anthropic", "claude-test")
    with pytest.raises(InvalidInput, match="must be one of offline, anthropic, openai, ollama"):
        async with planning_model(settings, "gpt"):
            pass
