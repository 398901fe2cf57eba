"""Worker test helpers: JSON log capture, settings with a fast heartbeat, and worker subprocesses."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from taskmaster.config import Settings
from taskmaster.core.logging import configure_logging
from tests.support import LogCapture, free_port


@pytest.fixture
def json_logs() -> Iterator[LogCapture]:
    """Route every log line (structlog and stdlib, DBOS included) as JSON into a buffer for the test."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = LogCapture()
    configure_logging("info", "json", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.reset_defaults()


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
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                assert self.alive(), self.log_path.read_text()
                try:
                    if (await http.get("/health")).status_code == 200:
                        return base
                except httpx.TransportError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"the API did not answer within {timeout:g}s")
                await asyncio.sleep(0.1)
