"""`taskmaster serve` as a user runs it: a few lines on where it runs, /health answered, JSON log lines with the
request id; a busy port refused before anything starts."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from taskmaster import __version__
from tests.cli.conftest import TASKMASTER, clean_env
from tests.support import free_port


def test_serve_prints_where_it_runs_answers_health_and_logs_the_request_id(workdir: Path) -> None:
    port = free_port()
    log_path = workdir / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [TASKMASTER, "serve", "--port", str(port)],
            cwd=workdir,
            env=clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        started = time.monotonic()
        response = None
        while time.monotonic() - started < 60:  # a bound for a loaded machine, not a performance goal
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", headers={"X-Request-ID": "abc"}, timeout=60)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert response is not None, f"no answer within 60 s:\n{log_path.read_text()}"
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "abc"
        token = (workdir / ".taskmaster" / "admin-token").read_text().strip()
        assert (workdir / ".taskmaster" / "admin-token").stat().st_mode & 0o777 == 0o600
        listed = httpx.get(f"http://127.0.0.1:{port}/api/projects", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200
        assert listed.json() == []
    finally:
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(timeout=60)
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status still says why it stopped.
    assert exit_code in (0, -signal.SIGTERM)
    assert any(r.get("event") == "worker stopped" for r in records)
    assert not any(r.get("logger", "").startswith(("alembic", "uvicorn")) for r in records)
    banner = [line for line in log_path.read_text().splitlines() if not line.startswith("{")]
    assert banner[0].startswith(f"Taskmaster {__version__} on http://127.0.0.1:{port} (")
    assert "with a worker in this process" in banner[0] and len(banner) == 4
    assert banner[2] == "  admin token: .taskmaster/admin-token (send it as 'Authorization: Bearer <token>')"
    assert banner[3].startswith("  next: taskmaster project add")
    assert len(records) <= 6, records  # database ready, worker started, request, worker stopped
    assert any(r.get("event") == "request" and r.get("request_id") == "abc" for r in records)
    assert all("admin-token" not in str(r.get("token", "")) for r in records)
    assert token not in log_path.read_text()


def test_a_second_serve_on_a_busy_port_fails_before_anything_starts(workdir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        second = subprocess.run(
            [TASKMASTER, "serve", "--port", str(port)],
            cwd=workdir,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert second.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in second.stderr
    assert "worker started" not in second.stdout + second.stderr
    assert not (workdir / ".taskmaster").exists()  # not even the database was made
