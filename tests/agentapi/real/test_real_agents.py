"""Each real CLI under `taskmaster agentapi serve`, against the fake model servers: what a workflow relies on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agentapi.conftest import wait_until
from tests.agentapi.real.agents import recipe
from tests.agentapi.real.models import FILE_CONTENT, GREETING, PAUSED_REPLY, Script
from tests.agentapi.test_cli import LAUNCH
from tests.support import free_port

# The first test also installs the CLIs (Aider's dependencies take minutes from PyPI); later runs reuse the cache.
pytestmark = [pytest.mark.agents_real, pytest.mark.slow, pytest.mark.timeout(1200)]

WINDOW = "1.5"  # shorter than the model's 4 s pause: a pause mistaken for the prompt would show as stable
CHROME = ("? for shortcuts", "Tokens:", "Tip:", "esc to", "Type your message", "Worked for", "for shortcuts", "─────")
BULLETS = "●•✦⏺"


@contextmanager
def agentapi(tmp_path: Path) -> Iterator[httpx.Client]:
    """`taskmaster agentapi serve --multi` as a real process; yields a client with its token."""
    port = free_port()
    home = tmp_path / "state"
    argv = [sys.executable, "-c", LAUNCH, "serve", "--multi", "--port", str(port), "--stability-window", WINDOW]
    env = {**os.environ, "TASKMASTER_HOME": str(home)}
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        token_file = home / "agentapi-token"

        def up() -> bool:
            assert server.poll() is None, "agentapi serve exited"
            if not token_file.exists():
                return False
            http.headers["Authorization"] = f"Bearer {token_file.read_text().strip()}"
            try:
                return http.get("/sessions").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=30)
        yield http
    finally:
        http.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _status(http: httpx.Client, prefix: str) -> dict[str, Any]:
    body: dict[str, Any] = http.get(f"{prefix}/status").json()
    return body


def _last(http: httpx.Client, prefix: str) -> dict[str, Any]:
    message: dict[str, Any] = http.get(f"{prefix}/messages").json()["messages"][-1]
    return message


def _ask(http: httpx.Client, prefix: str, text: str, timeout: float = 90) -> dict[str, Any]:
    """Send a user message once stable; return the status and reply once stable again (noting any early stable)."""
    wait_until(lambda: _status(http, prefix)["status"] == "stable", timeout)
    sent = http.post(f"{prefix}/message", json={"content": text, "type": "user"})
    assert sent.status_code == 200, sent.text
    wait_until(lambda: _status(http, prefix)["status"] == "stable", timeout, interval=0.1)
    return {"status": _status(http, prefix), "reply": _last(http, prefix)}


def _plain(reply: str) -> list[str]:
    """The reply's text rows, without the agent's bullets, indentation and blank rows."""
    return [row.strip().lstrip(BULLETS).strip() for row in reply.split("\n") if row.strip()]


def _clean(reply: str) -> None:
    assert not any(mark in reply for mark in CHROME), reply
    assert "\n\n\n" not in reply, reply


def _session_processes(home: Path) -> set[int]:
    """Every process whose environment names this test's agent home: the agent and all it started."""
    marker = f"HOME={home}".encode()
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as f:
                    if marker in f.read().split(b"\0"):
                        found.add(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("agent_type", ["claude", "codex", "gemini", "aider"])
def test_real_agent_under_agentapi(
    agent_type: str, agent_binaries: dict[str, Path], model_server: tuple[str, Script], tmp_path: Path
) -> None:
    url, script = model_server
    home, work = tmp_path / "home", tmp_path / "work"
    how = recipe(agent_type, agent_binaries[agent_type], url, home, work)
    with agentapi(tmp_path) as http:
        spec = {"type": how.agent_type, "command": how.argv, "env": how.env, "cwd": str(work)}
        created = http.post("/sessions", json=spec)
        assert created.status_code == 201, created.text
        prefix = f"/sessions/{created.json()['id']}"

        # Stable at start, with the prompt (not a question).
        wait_until(lambda: _status(http, prefix)["status"] == "stable", 90)
        assert "waiting_for" not in _status(http, prefix)

        # Two questions, two clean replies.
        for question in ("hello", "hello again"):
            answer = _ask(http, prefix, question)
            assert _plain(answer["reply"]["content"]) == GREETING.split("\n"), answer
            _clean(answer["reply"]["content"])
        assert any(kind != "gemini:generateContent" for kind, _ in script.requests)

        # A reply that pauses mid-stream is captured whole: never stable before its end.
        started = time.monotonic()
        answer = _ask(http, prefix, "pause please")
        assert time.monotonic() - started >= script.pause_seconds
        assert _plain(answer["reply"]["content"]) == [row for row in PAUSED_REPLY.split("\n") if row], answer
        _clean(answer["reply"]["content"])

        # A file edit through the agent's own tool: its permission question is shown as waiting, answered raw.
        edit = http.post(f"{prefix}/message", json={"content": "please edit the file", "type": "user"})
        assert edit.status_code == 200, edit.text
        try:
            wait_until(lambda: "waiting_for" in _status(http, prefix), 60, interval=0.1)
        except TimeoutError:
            raise AssertionError(f"no question: {_status(http, prefix)} {_last(http, prefix)}") from None
        status = _status(http, prefix)
        assert status["status"] == "stable"
        waiting = status["waiting_for"]
        assert waiting["question"].endswith("?"), waiting
        assert len(waiting["choices"]) >= 2, waiting
        assert not (work / "hello.txt").exists()
        busy = http.post(f"{prefix}/message", json={"content": "hello?", "type": "user"})
        assert busy.status_code == 409
        assert http.post(f"{prefix}/message", json={"content": how.answer_yes, "type": "raw"}).status_code == 200
        target = work / "hello.txt"
        wait_until(lambda: target.exists() and target.read_text() == FILE_CONTENT, 60)
        wait_until(lambda: (s := _status(http, prefix))["status"] == "stable" and "waiting_for" not in s, 90)

        # Every process of the session ends with it.
        agent_processes = _session_processes(home)
        assert agent_processes
        assert http.delete(prefix).status_code == 200
        wait_until(lambda: not {p for p in _session_processes(home) if not _zombie(p)}, 20)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
