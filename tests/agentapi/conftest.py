"""Fixtures: AgentAPI servers (single- and multi-session) on loopback, running the scripted test agents."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskmaster.agents.agentapi.conversation import SessionConfig
from taskmaster.agents.agentapi.server import create_app
from taskmaster.agents.agentapi.sessions import SessionManager
from tests.support import live_server

FAKE_AGENT = Path(__file__).parent / "agents" / "fake_agent.py"
WINDOW = 0.4  # the stability window in tests: long enough to outlast the test agent's spinner frames


def agent_argv(*args: str, think: float = 0.2) -> list[str]:
    return [sys.executable, str(FAKE_AGENT), "--think", str(think), *args]


@contextmanager
def agentapi_server(
    argv: Sequence[str] | None = None,
    *,
    agent_type: str = "claude",
    multi: bool = False,
    lines: int = 40,
    store: Any = None,
    **app_options: Any,
) -> Iterator[str]:
    """Serve AgentAPI on 127.0.0.1 with `argv` as the default session (when given); yields the base URL."""
    manager = SessionManager(store=store)

    async def start(m: SessionManager) -> None:
        if argv is not None:
            config = SessionConfig(argv=argv, agent_type=agent_type, lines=lines, stability_window=WINDOW)
            await m.create(config, default=True)
            manager.started_pid = m.default.pid  # type: ignore[attr-defined]

    app_options.setdefault("stability_window", WINDOW)
    app_options.setdefault("auth_token", None)
    app = create_app(manager, multi=multi, on_startup=start, **app_options)
    with live_server(app) as url:
        yield url


def wait_until(check: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)


def wait_stable(client: httpx.Client, prefix: str = "", timeout: float = 20.0) -> None:
    wait_until(lambda: client.get(f"{prefix}/status").json()["status"] == "stable", timeout)


def send_and_wait(client: httpx.Client, text: str, prefix: str = "") -> list[dict[str, Any]]:
    """POST a user message, wait for stable, return the messages."""
    wait_stable(client, prefix)
    response = client.post(f"{prefix}/message", json={"content": text, "type": "user"})
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True
    wait_stable(client, prefix)
    messages: list[dict[str, Any]] = client.get(f"{prefix}/messages").json()["messages"]
    return messages


@pytest.fixture
def server() -> Iterator[str]:
    """A single-session server running the Claude-style test agent on a 40-row screen."""
    with agentapi_server(agent_argv()) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as http:
        yield http
