"""The worker as its own OS process: SIGTERM stops it cleanly, and after SIGKILL mid-pipeline a restart under the
same worker id resumes the pipeline at once (its own lease, no waiting for staleness) without redoing the steps that
had finished."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from taskmaster.config import Settings
from taskmaster.db import migrate
from taskmaster.db.models import Project
from taskmaster.db.session import Database
from taskmaster.db.workers import WorkerInfo, read_workers
from taskmaster.pipelines.logs import read_logs
from taskmaster.pipelines.runs import create_run
from taskmaster.workspaces.git_cache import MirrorCache
from tests.support import (
    PostgresDatabase,
    eventually,
    make_pipeline_repo,
    make_settings,
    processes_with,
    require_postgres,
)
from tests.support.pipelines import load
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.slow

WORKER_ID = "crash-test-worker"
# Long, so that a resume before it passes can only be the restarted worker taking back its own pipeline.
STALE_AFTER = 60.0


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """Every process a test starts, killed at the end if the test left it running."""
    started: list[WorkerProcess] = []
    yield started
    for proc in started:
        proc.close()


@pytest.fixture
async def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, reachable_dir: Path
) -> AsyncIterator[tuple[Settings, Database, dict[str, str]]]:
    """Settings, a migrated app database (as `taskmaster db migrate` leaves it) and the worker's environment:
    embedded SQLite or a new PostgreSQL database."""
    state = tmp_path / "state"
    env = {
        "TASKMASTER_HOME": str(state),
        "TASKMASTER_WORKER_ID": WORKER_ID,
        "TASKMASTER_WORKER_HEARTBEAT_SECONDS": "0.5",
        "TASKMASTER_WORKER_STALE_AFTER_SECONDS": str(STALE_AFTER),
        "WSL2_INSTANCE_PATH": str(reachable_dir / "workspaces"),
        "TASKMASTER_MIRROR_ROOT": str(reachable_dir / "mirrors"),
    }
    pg: PostgresDatabase | None = None
    if request.param == "postgresql":
        require_postgres()
        pg = PostgresDatabase()
        await asyncio.to_thread(pg.create)
        env["DATABASE_URL"] = pg.url
    settings = make_settings(state, env.get("DATABASE_URL"), TASKMASTER_WORKER_ID=WORKER_ID)
    db = Database.from_settings(settings)
    await migrate.upgrade(db)
    try:
        yield settings, db, env
    finally:
        await db.dispose()
        if pg is not None:
            await asyncio.to_thread(pg.drop)


async def _worker_row(db: Database) -> WorkerInfo | None:
    rows = [w for w in await read_workers(db, stale_after_seconds=30) if w.name == WORKER_ID]
    return rows[0] if rows else None


@pytest.mark.parametrize("deployment", ["sqlite"], indirect=True)
async def test_sigterm_stops_a_worker_process_cleanly(
    deployment: tuple[Settings, Database, dict[str, str]], tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    settings, db, env = deployment
    worker = WorkerProcess(tmp_path, env, "worker").start()
    workers.append(worker)

    async def ready() -> WorkerInfo | None:
        assert worker.alive(), worker.log_path.read_text()
        return await _worker_row(db)

    running = await eventually(ready, what="the worker's first heartbeat", timeout=60)
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGTERM)
    exit_code = await asyncio.to_thread(worker.proc.wait, 60)
    stopped = await _worker_row(db)

    assert (running.status, running.mode, running.pid) == ("running", "process", worker.pid)
    assert exit_code == 0
    assert stopped is not None
    assert stopped.status == "stopped"
    assert stopped.stopped_at is not None
    events = [r["event"] for r in worker.records()]
    assert "worker ready" in events
    assert "worker stopping" in events
    assert "worker stopped" in events
    assert sorted(path.name for path in settings.state_dir.iterdir() if "dbos" in path.name) == []


@pytest.mark.postgres
@pytest.mark.parametrize("deployment", ["postgresql"], indirect=True)
async def test_a_pipeline_survives_sigkill_of_its_worker_and_the_restarted_worker_finishes_it(
    deployment: tuple[Settings, Database, dict[str, str]],
    tmp_path: Path,
    reachable_dir: Path,
    workers: list[WorkerProcess],
) -> None:
    _, db, env = deployment
    marker = f"marker-{uuid.uuid4().hex}"
    repo = tmp_path / "repo"
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
        mirror = MirrorCache(reachable_dir / "requester-mirrors", max_bytes=1 << 30)
        pipeline_id = (await create_run(session, project, ref="main", mirror=mirror)).id
    first = WorkerProcess(tmp_path, env, "first").start()
    workers.append(first)

    async def slow_running() -> bool:
        assert first.alive(), first.log_path.read_text()
        return bool(processes_with(marker)) and "started-1" in await _log(db, pipeline_id)

    await eventually(slow_running, what="the slow step to run and log its start", timeout=90)
    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(first.proc.wait, 30)
    killed_at = time.monotonic()
    row_after_kill = await _worker_row(db)

    second = WorkerProcess(tmp_path, env, "second").start()
    workers.append(second)

    async def finished() -> bool:
        assert second.alive(), second.log_path.read_text()
        pipeline, _, _ = await load(db, pipeline_id)
        return pipeline.status not in {"pending", "queued", "running"}

    await eventually(finished, what="the pipeline to finish on the restarted worker", timeout=90)
    finished_after = time.monotonic() - killed_at
    assert second.proc is not None
    second.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(second.proc.wait, 60) == 0

    assert row_after_kill is not None and row_after_kill.status == "running"
    assert finished_after < STALE_AFTER
    pipeline, steps, attempts = await load(db, pipeline_id)
    assert (pipeline.status, pipeline.worker_id) == ("success", WORKER_ID)
    assert {name: step.status for name, step in steps.items()} == dict.fromkeys(("first", "slow", "last"), "success")
    assert [a.status for a in attempts["first"]] == ["success"]  # not redone
    assert [(a.status, a.failure_reason) for a in attempts["slow"]] == [("failed", "infra"), ("success", None)]
    log = await _log(db, pipeline_id)
    assert "started-1" in log and "started-2" in log and "done-2" in log
    assert "done-1" not in log
    assert processes_with(marker) == []


async def _log(db: Database, pipeline_id: uuid.UUID) -> str:
    async with db.session() as session:
        return "".join(chunk.content for chunk in await read_logs(session, pipeline_id, step="slow"))
