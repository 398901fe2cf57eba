"""`taskmaster agentapi serve` as a real process: serves the agent, and exits when the agent does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.agentapi.conftest import FAKE_AGENT, send_and_wait, wait_stable, wait_until
from tests.support import free_port

LAUNCH = "from taskmaster.cli.agentapi import command; command()"


@contextmanager
def serve(*options: str, agent: list[str] | None = None) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    agent = agent or [sys.executable, str(FAKE_AGENT), "--think", "0.1"]
    argv = [sys.executable, "-c", LAUNCH, "serve", "--port", str(port), "--stability-window", "0.4", *options]
    process = subprocess.Popen([*argv, "--", *agent], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"server exited early: {process.stdout.read() if process.stdout else ''}")
            try:
                return httpx.get(f"{url}/status", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=30)
        yield process, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_serve_runs_the_agent_and_guesses_nothing_when_type_given() -> None:
    with serve("--type", "claude", "--term-height", "40") as (_process, url), httpx.Client(base_url=url) as http:
        status = http.get("/status").json()
        assert status["agent_type"] == "claude"
        messages = send_and_wait(http, "from the cli")
        assert messages[-1]["content"] == "Reply to: from the cli"


def test_serve_exits_with_failure_when_the_agent_crashes() -> None:
    with serve("--type", "claude") as (process, url), httpx.Client(base_url=url, timeout=30) as http:
        wait_stable(http)
        assert http.post("/message", json={"content": "crash", "type": "user"}).status_code == 200
        assert process.wait(timeout=20) == 1


def test_serve_refuses_a_bad_host_list_and_a_missing_command() -> None:
    bad = subprocess.run(
        [sys.executable, "-c", LAUNCH, "serve", "--allowed-hosts", "http://x", "--", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2
    assert "must not include http://" in bad.stderr
    missing = subprocess.run(
        [sys.executable, "-c", LAUNCH, "serve"], capture_output=True, text=True, timeout=30, check=False
    )
    assert missing.returncode == 2
    assert "agent command" in missing.stderr


def test_sigterm_stops_server_and_agent() -> None:
    with serve() as (process, url), httpx.Client(base_url=url) as http:
        wait_stable(http)
        out = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=False).stdout
        children = [int(p) for p in out.split()]
        assert children
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(timeout=15) in (0, -signal.SIGTERM)
    for pid in children:
        wait_until(lambda pid=pid: not os.path.exists(f"/proc/{pid}") or _zombie(pid), timeout=10)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except FileNotFoundError:
        return True
