"""Fake model servers, one of each per module (start-up costs more than a test), reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agents.llm.fakes import ANTHROPIC_KEY, OPENAI_KEY, FakeLlm, Status, serve


@pytest.fixture(scope="module")
def _anthropic_server() -> Iterator[tuple[str, FakeLlm]]:
    with serve("anthropic") as server:
        yield server


@pytest.fixture(scope="module")
def _openai_server() -> Iterator[tuple[str, FakeLlm]]:
    with serve("openai") as server:
        yield server


@pytest.fixture
def anthropic_fake(_anthropic_server: tuple[str, FakeLlm]) -> tuple[str, FakeLlm]:
    _anthropic_server[1].reset(lambda body: Status(500, "no brain set"), api_key=ANTHROPIC_KEY)
    return _anthropic_server


@pytest.fixture
def openai_fake(_openai_server: tuple[str, FakeLlm]) -> tuple[str, FakeLlm]:
    _openai_server[1].reset(lambda body: Status(500, "no brain set"), api_key=OPENAI_KEY)
    return _openai_server
