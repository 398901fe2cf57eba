"""The runtime in-process, on SQLite (embedded) and PostgreSQL: jobs run, heartbeats land, stop is clean."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from taskmaster.config import Settings
from taskmaster.core.errors import Conflict
from taskmaster.db.session import Database
from taskmaster.durable.client import JobClient
from taskmaster.durable.names import NOOP_STEP, NOOP_WORKFLOW, QUEUE
from taskmaster.durable.workers import read_workers
from taskmaster.runtime import Runtime
from taskmaster.worker.runtime import WorkerRuntime
from tests.support import LogCapture
from tests.support.workers import with_worker


async def test_a_noop_job_enqueued_through_the_client_succeeds_and_logs_its_request_id(
    settings: Settings, db: Database, json_logs: LogCapture
) -> None:
    runtime = WorkerRuntime(Runtime(settings, db), mode="in-process", shutdown_grace_seconds=0)
    client = JobClient(settings)
    await runtime.start()
    try:
        job_id = await client.enqueue(NOOP_WORKFLOW, 3, 0.05, request_id="req-7f3a")
        async with asyncio.timeout(60):
            job = await client.wait(job_id, poll_seconds=0.1)
        steps = await client.list_steps(job_id)
    finally:
        client.close()
        await runtime.stop()

    assert job.status == "SUCCESS", job.error
    assert job.result == {"steps": 3, "executor_id": runtime.executor_id}
    assert job.executor_id == runtime.executor_id
    assert (job.name, job.queue, job.request_id) == (NOOP_WORKFLOW, QUEUE, "req-7f3a")
    assert [(s.index, s.name, s.output) for s in steps] == [
        (1, NOOP_STEP, 0),
        (2, NOOP_STEP, 1),
        (3, NOOP_STEP, 2),
    ]
    assert all(s.completed and s.error is None for s in steps)
    if settings.embedded:
        assert (settings.state_dir / "dbos.sqlite").is_file()

    job_lines = [r for r in json_logs.records() if r.get("job_id") == job_id]
    finished = [r for r in job_lines if r["event"] == "noop step finished"]
    assert [r["step"] for r in finished] == [0, 1, 2]
    assert {r["request_id"] for r in job_lines} == {"req-7f3a"}
    assert any(r["event"] == "noop job finished" for r in job_lines)


async def test_heartbeats_keep_the_worker_row_fresh_and_a_stop_marks_it_stopped(
    settings: Settings, db: Database
) -> None:
    settings = with_worker(settings, id="hb-worker", heartbeat_seconds=0.2)
    runtime = WorkerRuntime(Runtime(settings, db), mode="in-process", shutdown_grace_seconds=0)
    await runtime.start()
    try:
        with pytest.raises(Conflict):
            await WorkerRuntime(Runtime(settings, db), mode="process").start()
        [first] = await read_workers(db, stale_after_seconds=5)
        await asyncio.sleep(0.7)
        [later] = await read_workers(db, stale_after_seconds=5)
    finally:
        await runtime.stop()
    [stopped] = await read_workers(db, stale_after_seconds=5)

    assert (first.name, first.mode, first.status, first.pid) == (
        "hb-worker",
        "in-process",
        "running",
        os.getpid(),
    )
    assert first.alive
    assert first.stopped_at is None
    assert later.last_heartbeat_at > first.last_heartbeat_at
    assert later.started_at == first.started_at
    assert later.heartbeat_age_seconds < 5
    assert (stopped.status, stopped.alive) == ("stopped", False)
    assert stopped.stopped_at is not None
    assert stopped.stopped_at >= later.last_heartbeat_at
    assert not runtime.running


async def test_the_runtime_can_start_again_in_the_same_process_after_a_stop(
    state_dir: Path, settings: Settings, db: Database
) -> None:
    client = JobClient(settings)
    try:
        for round_ in range(2):
            runtime = WorkerRuntime(Runtime(settings, db), mode="in-process", shutdown_grace_seconds=0)
            await runtime.start()
            try:
                job_id = await client.enqueue(NOOP_WORKFLOW, 1, 0.0, request_id=f"round-{round_}")
                async with asyncio.timeout(60):
                    job = await client.wait(job_id, poll_seconds=0.1)
            finally:
                await runtime.stop()
            assert (job.status, job.result["steps"]) == ("SUCCESS", 1)
    finally:
        client.close()
