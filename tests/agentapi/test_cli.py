"""`taskmaster agentapi serve` as a real process: serves the agent, and exits when the agent does."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.agentapi.conftest import FAKE_AGENT, send_and_wait, wait_stable, wait_until
from tests.support import free_port

LAUNCH = "from taskmaster.cli.agentapi import command; command()"


@contextmanager
def serve(*options: str, agent: list[str] | None = None) -> Iterator[tuple[subprocess.Popen[str], httpx.Client]]:
    """`agentapi serve` with its state dir in a temporary directory; yields it and a client sending its token."""
    port = free_port()
    agent = agent or [sys.executable, str(FAKE_AGENT), "--think", "0.1"]
    argv = [sys.executable, "-c", LAUNCH, "serve", "--port", str(port), "--stability-window", "0.4", *options]
    home = tempfile.TemporaryDirectory()
    env = {**os.environ, "TASKMASTER_HOME": home.name}
    process = subprocess.Popen(
        [*argv, "--", *agent], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    url = f"http://127.0.0.1:{port}"
    token_file = Path(home.name) / "agentapi-token"
    http = httpx.Client(base_url=url, timeout=30)
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"server exited early: {process.stdout.read() if process.stdout else ''}")
            if token_file.exists():
                http.headers["Authorization"] = f"Bearer {token_file.read_text().strip()}"
            try:
                return http.get("/status", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=30)
        yield process, http
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        http.close()
        home.cleanup()


def test_serve_runs_the_agent_and_guesses_nothing_when_type_given() -> None:
    with serve("--type", "claude", "--term-height", "40") as (_process, http):
        status = http.get("/status").json()
        assert status["agent_type"] == "claude"
        messages = send_and_wait(http, "from the cli")
        assert messages[-1]["content"] == "Reply to: from the cli"


def test_serve_exits_with_failure_when_the_agent_crashes() -> None:
    with serve("--type", "claude") as (process, http):
        wait_stable(http)
        assert http.post("/message", json={"content": "crash", "type": "user"}).status_code == 200
        assert process.wait(timeout=20) == 1


def test_serve_refuses_a_bad_host_list_and_a_missing_command() -> None:
    bad = subprocess.run(
        [sys.executable, "-c", LAUNCH, "serve", "--type", "claude", "--allowed-hosts", "http://x", "--", "true"],
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
    with serve("--type", "claude") as (process, http):
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


def test_serve_generates_a_token_saved_0600_and_printed_once() -> None:
    with serve("--type", "claude") as (process, http):
        token = http.headers["Authorization"].removeprefix("Bearer ")
        assert len(token) >= 40
        assert httpx.get(str(http.base_url.join("/status"))).status_code == 401
        assert http.get("/status").status_code == 200
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        output = process.stdout.read() if process.stdout else ""
    assert output.count(token) == 1


def test_token_file_is_private(tmp_path: Path) -> None:
    from taskmaster.cli.agentapi import _new_token

    path = tmp_path / "state" / "agentapi-token"
    path.parent.mkdir()
    path.write_text("old\n")
    path.chmod(0o644)
    token = _new_token(path)
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_no_auth_serves_loopback_only_and_is_refused_on_other_interfaces() -> None:
    with serve("--type", "claude", "--no-auth") as (_process, http):
        assert "Authorization" not in http.headers
        assert http.get("/status").status_code == 200
    public = subprocess.run(
        [sys.executable, "-c", LAUNCH, "serve", "--no-auth", "--host", "0.0.0.0", "--type", "claude", "--", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert public.returncode == 2
    assert "loopback" in public.stderr


def test_custom_agent_without_prompt_regex_refuses_to_start() -> None:
    refused = subprocess.run(
        [sys.executable, "-c", LAUNCH, "serve", "--", "bash", "--norc"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 2
    assert "--prompt-regex" in refused.stderr
