"""Worker processes for tests: `python -m taskmaster.worker` and `taskmaster serve --no-worker` in their own OS
processes, their environment, settings with worker fields changed, and a pipeline whose slow step is there to be
interrupted by killing the worker that runs it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from taskmaster.config import Settings
from taskmaster.db.models import Project
from taskmaster.db.session import Database
from taskmaster.pipelines.logs import read_logs
from taskmaster.pipelines.runs import create_run
from taskmaster.workspaces.git_cache import MirrorCache
from tests.support.eventually import eventually
from tests.support.git import make_pipeline_repo
from tests.support.net import free_port
from tests.support.pipelines import load
from tests.support.processes import processes_with


def with_worker(settings: Settings, **changes: Any) -> Settings:
    """A copy of `settings` with worker fields changed (the tree is frozen)."""
    return settings.model_copy(update={"worker": settings.worker.model_copy(update=changes)})


def worker_env(
    home: Path, worker_id: str, machine: Path, stale_after: float, database_url: str | None = None
) -> dict[str, str]:
    """The environment of a worker that beats every 0.5 s and counts others lost after `stale_after` seconds: its
    state (with the secret key file) in `home`, workspaces and mirrors under `machine`, the database at
    `database_url` (else the embedded SQLite)."""
    env = {
        "TASKMASTER_HOME": str(home),
        "TASKMASTER_WORKER_ID": worker_id,
        "TASKMASTER_WORKER_HEARTBEAT_SECONDS": "0.5",
        "TASKMASTER_WORKER_STALE_AFTER_SECONDS": str(stale_after),
        "WSL2_INSTANCE_PATH": str(machine / "workspaces"),
        "TASKMASTER_MIRROR_ROOT": str(machine / "mirrors"),
    }
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


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

    async def kill(self) -> None:
        """SIGKILL, as a crash would end it; returns once it is gone."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait, 30)

    async def stop(self) -> int:
        """SIGTERM, as a deployment stops it; its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, 60)

    def close(self) -> None:
        """Kill it if still running (tests end workers on purpose; this only cleans up after a failure)."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=30)


class Workers:
    """The worker processes a test starts, their logs under `tmp_path`; `close()` kills those left running."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[WorkerProcess] = []

    def start(self, env: dict[str, str], name: str) -> WorkerProcess:
        worker = WorkerProcess(self.tmp_path, env, name).start()
        self.started.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.started:
            worker.close()


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


@dataclass
class SlowPipeline:
    """A run of a local project's pipeline, left for a worker: `first`, then `slow`, which logs `started-N`, sleeps
    3 s and logs `<marker> done-N` (N the attempt; the unique `marker` names its processes), then `last`."""

    db: Database
    id: uuid.UUID
    marker: str

    @classmethod
    async def queue(cls, db: Database, repo: Path, mirrors: Path) -> SlowPipeline:
        """The project over a new repository at `repo`, and the run (its mirror under `mirrors`)."""
        marker = f"marker-{uuid.uuid4().hex}"
        make_pipeline_repo(
            repo,
            "steps:\n"
            "  first: {run: 'echo first'}\n"
            f"  slow: {{run: 'echo started-$TASKMASTER_ATTEMPT; sleep 3; echo {marker} done-$TASKMASTER_ATTEMPT',"
            " needs: [first]}\n"
            "  last: {run: 'echo last', needs: [slow]}\n",
        )
        async with db.transaction() as session:
            project = Project(name="app", repository=str(repo), forge="local")
            session.add(project)
            await session.flush()
            mirror = MirrorCache(mirrors, max_bytes=1 << 30)
            pipeline_id = (await create_run(session, project, ref="main", mirror=mirror)).id
        return cls(db, pipeline_id, marker)

    async def log(self) -> str:
        """What the `slow` step logged, every attempt."""
        async with self.db.session() as session:
            return "".join(chunk.content for chunk in await read_logs(session, self.id, step="slow"))

    async def running(self, *workers: WorkerProcess) -> None:
        """Wait until the `slow` step's first attempt runs and has logged its start; a worker of `workers` that
        exits meanwhile fails the test with its log."""

        async def started() -> bool:
            for worker in workers:
                assert worker.alive(), worker.log_path.read_text()
            return bool(processes_with(self.marker)) and "started-1" in await self.log()

        await eventually(started, what="the slow step to run and log its start", timeout=90)

    async def ended(self, worker: WorkerProcess, what: str) -> None:
        """Wait until the pipeline ended (`what` says where); `worker` exiting meanwhile fails the test."""

        async def ended() -> bool:
            assert worker.alive(), worker.log_path.read_text()
            pipeline, _, _ = await load(self.db, self.id)
            return pipeline.status not in {"pending", "queued", "running"}

        await eventually(ended, what=what, timeout=90)
