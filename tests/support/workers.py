"""Worker processes for tests: `python -m taskmaster.worker` and `taskmaster serve --no-worker` in their own OS
processes, and settings with worker fields changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from taskmaster.config import Settings
from tests.support.eventually import eventually
from tests.support.net import free_port


def with_worker(settings: Settings, **changes: Any) -> Settings:
    """A copy of `settings` with worker fields changed (the tree is frozen)."""
    return settings.model_copy(update={"worker": settings.worker.model_copy(update=changes)})


class WorkerProcess:
    """`python -m taskmaster.worker` in its own OS process, with a clean environment and a log file."""

    def __init__(self, tmp_path: Path, env: dict[str, str], name: str) -> None:
        self.log_path = tmp_path / f"{name}.log"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "TASKMASTER_ENV": "test",
            "TASKMASTER_LOG_FORMAT": "json",
            **env,
        }
        self.cwd = tmp_path
        self.proc: subprocess.Popen[bytes] | None = None

    argv: tuple[str, ...] = ("-m", "taskmaster.worker")

    def start(self) -> WorkerProcess:
        with self.log_path.open("wb") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, *self.argv],
                env=self.env,
                cwd=self.cwd,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def records(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def close(self) -> None:
        """Kill it if still running (tests end workers on purpose; this only cleans up after a failure)."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=30)


class ApiProcess(WorkerProcess):
    """`taskmaster serve --no-worker` in its own OS process: the API that enqueues, never runs, jobs."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        super().__init__(tmp_path, env, "api")
        self.port = free_port()
        self.argv = ("-m", "taskmaster", "serve", "--no-worker", "--port", str(self.port))

    async def url(self, timeout: float = 30) -> str:
        """The base URL, once `/health` answers 200."""
        base = f"http://127.0.0.1:{self.port}"
        async with httpx.AsyncClient(base_url=base, timeout=2) as http:

            async def healthy() -> bool:
                assert self.alive(), self.log_path.read_text()
                try:
                    return (await http.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(healthy, timeout=timeout, interval=0.1, what="the API answering /health")
        return base
