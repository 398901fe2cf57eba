"""The worker as its own OS process: SIGTERM stops it cleanly, and after SIGKILL a restart finishes the job
without repeating a step that had completed (DBOS recovery by executor id)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from taskmaster.auth import service as auth_service
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.config import Settings
from taskmaster.db import migrate
from taskmaster.db.session import Database
from taskmaster.durable.client import JobClient
from taskmaster.durable.names import NOOP_WORKFLOW
from taskmaster.durable.workers import WorkerInfo, read_workers
from tests.support import PostgresDatabase, eventually, make_settings, require_postgres
from tests.support.workers import ApiProcess, WorkerProcess

pytestmark = pytest.mark.slow

WORKER_ID = "crash-test-worker"


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """Every process a test starts, killed at the end if the test left it running."""
    started: list[WorkerProcess] = []
    yield started
    for proc in started:
        proc.close()


async def _schema(settings: Settings) -> Database:
    """Migrated, as `taskmaster db migrate` leaves it: a worker on PostgreSQL refuses an unmigrated schema."""
    db = Database.from_settings(settings)
    await migrate.upgrade(db)
    return db


@pytest.fixture
async def deployment(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Settings, Database, dict[str, str]]]:
    """Settings, a migrated app database and the worker's environment: embedded SQLite or new PostgreSQL."""
    state = tmp_path / "state"
    env = {
        "TASKMASTER_HOME": str(state),
        "TASKMASTER_WORKER_ID": WORKER_ID,
        "TASKMASTER_WORKER_HEARTBEAT_SECONDS": "0.5",
    }
    pg: PostgresDatabase | None = None
    if request.param == "postgresql":
        require_postgres()
        pg = PostgresDatabase()
        await asyncio.to_thread(pg.create)
        env["DATABASE_URL"] = pg.url
    settings = make_settings(state, env.get("DATABASE_URL"), TASKMASTER_WORKER_ID=WORKER_ID)
    db = await _schema(settings)
    try:
        yield settings, db, env
    finally:
        await db.dispose()
        if pg is not None:
            await asyncio.to_thread(pg.drop)


async def _worker_row(db: Database) -> WorkerInfo | None:
    rows = [w for w in await read_workers(db, stale_after_seconds=30) if w.name == WORKER_ID]
    return rows[0] if rows else None


def _step_events(proc: WorkerProcess, job_id: str, event: str) -> list[dict[str, object]]:
    return [r for r in proc.records() if r.get("job_id") == job_id and r.get("event") == event]


@pytest.mark.parametrize("deployment", ["sqlite"], indirect=True)
async def test_sigterm_stops_a_worker_process_cleanly_after_it_ran_a_job(
    deployment: tuple[Settings, Database, dict[str, str]], tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    settings, db, env = deployment
    worker = WorkerProcess(tmp_path, env, "worker").start()
    workers.append(worker)
    client = JobClient(settings)
    try:
        job_id = await client.enqueue(NOOP_WORKFLOW, 2, 0.0, request_id="req-sigterm")
        async with asyncio.timeout(60):
            job = await client.wait(job_id, poll_seconds=0.1)
    finally:
        client.close()
    running = await _worker_row(db)

    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGTERM)
    exit_code = await asyncio.to_thread(worker.proc.wait, 60)
    stopped = await _worker_row(db)

    assert job.status == "SUCCESS"
    assert job.result == {"steps": 2, "executor_id": WORKER_ID}
    assert running is not None
    assert (running.status, running.mode, running.pid) == ("running", "process", worker.pid)
    assert exit_code == 0
    assert stopped is not None
    assert stopped.status == "stopped"
    assert stopped.stopped_at is not None
    events = [r["event"] for r in worker.records()]
    assert "worker ready" in events
    assert "worker stopping" in events
    assert "worker stopped" in events
    assert {r["request_id"] for r in _step_events(worker, job_id, "noop step finished")} == {"req-sigterm"}


@pytest.mark.postgres
@pytest.mark.parametrize("deployment", ["postgresql"], indirect=True)
async def test_a_job_survives_sigkill_of_its_worker_and_completed_steps_do_not_run_again(
    deployment: tuple[Settings, Database, dict[str, str]], tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    settings, db, env = deployment
    async with db.transaction() as session:
        admin = await auth_service.create_token(session, spec=TokenSpec(name="t", role=Role.admin))
    api = ApiProcess(tmp_path, env).start()
    workers.append(api)
    first = WorkerProcess(tmp_path, env, "first").start()
    workers.append(first)
    client = JobClient(settings)
    headers = {"Authorization": f"Bearer {admin.token}", "X-Request-ID": "req-crash"}
    try:
        async with httpx.AsyncClient(base_url=await api.url(), headers=headers, timeout=10) as http:
            enqueued = await http.post("/api/jobs/noop", json={"steps": 6, "step_seconds": 0.5})
        assert enqueued.status_code == 202, enqueued.text
        job_id = enqueued.json()["id"]

        async def two_steps_done() -> bool:
            assert first.alive(), first.log_path.read_text()
            return sum(s.completed for s in await client.list_steps(job_id)) >= 2

        await eventually(two_steps_done, what="two completed steps", timeout=60)
        assert first.proc is not None
        first.proc.kill()
        await asyncio.to_thread(first.proc.wait, 30)
        done_before_kill = {s.output for s in await client.list_steps(job_id) if s.completed}
        at_kill = await client.get(job_id)
        row_after_kill = await _worker_row(db)

        # At debug level the worker keeps DBOS's own lines, among them its report of recovering the job.
        second = WorkerProcess(tmp_path, {**env, "TASKMASTER_LOG_LEVEL": "debug"}, "second").start()
        workers.append(second)
        async with asyncio.timeout(90):
            job = await client.wait(job_id, poll_seconds=0.2)
        steps = await client.list_steps(job_id)
        async with httpx.AsyncClient(base_url=await api.url(), headers=headers, timeout=10) as http:
            seen_by_api = (await http.get(f"/api/jobs/{job_id}")).json()
    finally:
        client.close()
    assert second.proc is not None
    second.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(second.proc.wait, 60) == 0

    assert 2 <= len(done_before_kill) < 6
    assert at_kill.status == "PENDING"
    assert row_after_kill is not None
    assert row_after_kill.status == "running"
    assert job.status == "SUCCESS", job.error
    assert job.result == {"steps": 6, "executor_id": WORKER_ID}
    assert seen_by_api["status"] == "SUCCESS"
    assert seen_by_api["result"] == job.result
    assert [s.output for s in steps] == [0, 1, 2, 3, 4, 5]
    assert all(s.completed for s in steps)

    started_after_restart = {r["step"] for r in _step_events(second, job_id, "noop step started")}
    assert started_after_restart.isdisjoint(done_before_kill)
    assert started_after_restart | done_before_kill == set(range(6))
    finished = _step_events(first, job_id, "noop step finished") + _step_events(second, job_id, "noop step finished")
    assert {r["step"] for r in finished} == set(range(6))
    assert {r["request_id"] for r in finished} == {"req-crash"}
    recovered = [r for r in second.records() if "Recovering 1 workflows" in str(r.get("event"))]
    assert recovered, "the restarted worker did not report recovering the job"
