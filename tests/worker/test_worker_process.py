"""The worker as its own OS process: SIGTERM stops it cleanly, and after SIGKILL mid-pipeline a restart under the
same worker id resumes the pipeline at once (its own lease, no waiting for staleness) without redoing the steps that
had finished."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskmaster.config import Settings
from taskmaster.db import migrate
from taskmaster.db.session import Database
from taskmaster.db.workers import WorkerInfo, read_workers
from tests.support import PostgresDatabase, eventually, make_settings, processes_with, require_postgres
from tests.support.pipelines import load
from tests.support.workers import SlowPipeline, Workers, worker_env

pytestmark = pytest.mark.slow

WORKER_ID = "crash-test-worker"
# Long, so that a resume before it passes can only be the restarted worker taking back its own pipeline.
STALE_AFTER = 60.0


@pytest.fixture
async def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, reachable_dir: Path
) -> AsyncIterator[tuple[Settings, Database, dict[str, str]]]:
    """Settings, a migrated app database (as `taskmaster db migrate` leaves it) and the worker's environment:
    embedded SQLite or a new PostgreSQL database."""
    state = tmp_path / "state"
    pg: PostgresDatabase | None = None
    if request.param == "postgresql":
        require_postgres()
        pg = PostgresDatabase()
        await asyncio.to_thread(pg.create)
    url = pg.url if pg is not None else None
    env = worker_env(state, WORKER_ID, reachable_dir, STALE_AFTER, url)
    settings = make_settings(state, url, TASKMASTER_WORKER_ID=WORKER_ID)
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
    deployment: tuple[Settings, Database, dict[str, str]], workers: Workers
) -> None:
    settings, db, env = deployment
    worker = workers.start(env, "worker")

    async def ready() -> WorkerInfo | None:
        assert worker.alive(), worker.log_path.read_text()
        return await _worker_row(db)

    running = await eventually(ready, what="the worker's first heartbeat", timeout=60)
    exit_code = await worker.stop()
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
    workers: Workers,
) -> None:
    _, db, env = deployment
    slow = await SlowPipeline.queue(db, tmp_path / "repo", reachable_dir / "requester-mirrors")
    pipeline_id, marker = slow.id, slow.marker
    first = workers.start(env, "first")
    await slow.running(first)
    await first.kill()
    killed_at = time.monotonic()
    row_after_kill = await _worker_row(db)

    second = workers.start(env, "second")
    await slow.ended(second, "the pipeline to finish on the restarted worker")
    finished_after = time.monotonic() - killed_at
    assert await second.stop() == 0

    assert row_after_kill is not None and row_after_kill.status == "running"
    assert finished_after < STALE_AFTER
    pipeline, steps, attempts = await load(db, pipeline_id)
    assert (pipeline.status, pipeline.worker_id) == ("success", WORKER_ID)
    assert {name: step.status for name, step in steps.items()} == dict.fromkeys(("first", "slow", "last"), "success")
    assert [a.status for a in attempts["first"]] == ["success"]  # not redone
    assert [(a.status, a.failure_reason) for a in attempts["slow"]] == [("failed", "infra"), ("success", None)]
    log = await slow.log()
    assert "started-1" in log and "started-2" in log and "done-2" in log
    assert "done-1" not in log
    assert processes_with(marker) == []
