"""Every process an agent starts ends with its session: detached daemons included (Codex's app-server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.agentapi.conftest import agentapi_server, wait_until
from tests.agentapi.test_cli import LAUNCH
from tests.support import free_port

# Starts a daemon the way `codex` does without --no-daemon: double fork into a new session, so it is in neither the
# agent's process group nor its tree once the middle process exits; then shows a prompt.
DAEMONIZING_AGENT = """
import os, sys, time
pid_file = sys.argv[1]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(pid_file + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pid_file + ".tmp", pid_file)
        time.sleep(600)
    os._exit(0)
sys.stdout.write("agent ready\\n> ")
sys.stdout.flush()
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_delete_session_ends_a_detached_daemon(tmp_path: Path) -> None:
    pid_file = tmp_path / "daemon.pid"
    command = [sys.executable, "-c", DAEMONIZING_AGENT, str(pid_file)]
    with agentapi_server(multi=True) as url, httpx.Client(base_url=url, timeout=30) as http:
        created = http.post("/sessions", json={"type": "custom", "command": command, "prompt_regex": "^> ?$"})
        assert created.status_code == 201, created.text
        session = created.json()["id"]
        wait_until(pid_file.exists)
        daemon = int(pid_file.read_text())
        agent = http.get(f"/sessions/{session}").json()["pid"]
        assert os.getsid(daemon) != os.getsid(agent)  # it left the agent's session
        assert http.delete(f"/sessions/{session}").status_code == 200
        wait_until(lambda: _gone(daemon), timeout=10)


def test_serve_is_the_subreaper_and_its_shutdown_ends_the_daemon(tmp_path: Path) -> None:
    pid_file = tmp_path / "daemon.pid"
    port = free_port()
    env = {**os.environ, "TASKMASTER_HOME": str(tmp_path / "state")}
    argv = [sys.executable, "-c", LAUNCH, "serve", "--port", str(port), "--prompt-regex", "^> ?$", "--no-auth"]
    server = subprocess.Popen(
        [*argv, "--", sys.executable, "-c", DAEMONIZING_AGENT, str(pid_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(pid_file.exists, timeout=30)
        daemon = int(pid_file.read_text())
        # Orphaned by its middle process, the daemon was adopted by the server, not by init.
        wait_until(lambda: _parent(daemon) == server.pid, timeout=10)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
        wait_until(lambda: _gone(daemon), timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


# The same, with a daemon that exits after half a second.
SHORT_DAEMON_AGENT = DAEMONIZING_AGENT.replace("time.sleep(600)\n    os._exit", "time.sleep(0.5)\n    os._exit", 1)


@pytest.mark.slow
def test_serve_collects_adopted_daemons_that_exit_on_their_own(tmp_path: Path) -> None:
    pid_file = tmp_path / "daemon.pid"
    port = free_port()
    env = {**os.environ, "TASKMASTER_HOME": str(tmp_path / "state")}
    argv = [sys.executable, "-c", LAUNCH, "serve", "--port", str(port), "--prompt-regex", "^> ?$", "--no-auth"]
    server = subprocess.Popen(
        [*argv, "--", sys.executable, "-c", SHORT_DAEMON_AGENT, str(pid_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(pid_file.exists, timeout=30)
        daemon = int(pid_file.read_text())
        # It exits after half a second, a zombie of the server until the server collects it.
        wait_until(lambda: not os.path.exists(f"/proc/{daemon}"), timeout=20)
        assert server.poll() is None
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
