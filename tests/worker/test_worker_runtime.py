"""The runtime in-process, on SQLite (embedded) and PostgreSQL: requested work runs, heartbeats land, stop is clean,
and one worker id runs once per process."""

from __future__ import annotations

import asyncio
import os

import pytest

from taskmaster.config import Settings
from taskmaster.core.errors import Conflict
from taskmaster.db.models import WorkflowRun
from taskmaster.db.session import Database
from taskmaster.db.workers import read_workers
from taskmaster.runtime import Runtime
from taskmaster.worker.runtime import WorkerRuntime
from taskmaster.workflows import service
from taskmaster.workflows.base import RunInput, RunResult
from taskmaster.workflows.registry import WorkflowRegistry
from taskmaster.workflows.service import RunRequest
from tests.support import LogCapture, eventually, make_project
from tests.support.workers import with_worker


class Echo:
    name = "echo"

    async def run(self, db: Database, run: RunInput) -> RunResult:
        return RunResult("succeeded", {"said": run.params.get("say")})


async def _finished(db: Database, run_id: object) -> WorkflowRun | None:
    async with db.session() as session:
        run = await session.get(WorkflowRun, run_id, populate_existing=True)
        return run if run is not None and run.status not in ("pending", "running") else None


async def test_a_started_runtime_runs_a_requested_workflow_run_and_logs_its_start_and_stop(
    settings: Settings, db: Database, json_logs: LogCapture
) -> None:
    settings = with_worker(settings, id="runner", heartbeat_seconds=0.2)
    project = await make_project(db)
    runtime = WorkerRuntime(Runtime(settings, db), mode="in-process")
    runtime.workflows.registry = WorkflowRegistry([Echo()])
    async with db.transaction() as session:
        requested = (await service.request_run(session, RunRequest(project.id, "echo", "k", params={"say": "hi"}))).run
    await runtime.start()
    try:
        runtime.wake()
        done = await eventually(lambda: _finished(db, requested.id), what="the echo run to finish")
    finally:
        await runtime.stop()

    assert (done.status, done.result, done.attempts) == ("succeeded", {"said": "hi"}, 1)
    events = [(r["event"], r.get("worker")) for r in json_logs.records() if r.get("logger") == "taskmaster.worker"]
    assert ("worker started", "runner") in events and ("worker stopped", "runner") in events
    assert not list(settings.state_dir.glob("dbos*"))


async def test_heartbeats_keep_the_worker_row_fresh_and_a_stop_marks_it_stopped(
    settings: Settings, db: Database
) -> None:
    settings = with_worker(settings, id="hb-worker", heartbeat_seconds=0.2)
    runtime = WorkerRuntime(Runtime(settings, db), mode="in-process")
    await runtime.start()
    try:
        with pytest.raises(Conflict, match="hb-worker is already started"):
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


async def test_two_worker_ids_run_side_by_side_in_one_process(settings: Settings, db: Database) -> None:
    first = WorkerRuntime(Runtime(with_worker(settings, id="one"), db), mode="in-process")
    second = WorkerRuntime(Runtime(with_worker(settings, id="two"), db), mode="in-process")
    await first.start()
    await second.start()
    try:
        rows = await read_workers(db, stale_after_seconds=5)
    finally:
        await second.stop()
        await first.stop()

    assert [(row.name, row.status) for row in rows] == [("one", "running"), ("two", "running")]


async def test_the_runtime_can_start_again_in_the_same_process_after_a_stop(settings: Settings, db: Database) -> None:
    settings = with_worker(settings, id="again")
    statuses = []
    for _ in range(2):
        runtime = WorkerRuntime(Runtime(settings, db), mode="in-process")
        await runtime.start()
        try:
            [row] = await read_workers(db, stale_after_seconds=5)
            statuses.append(row.status)
        finally:
            await runtime.stop()
        await runtime.stop()  # a second stop is harmless

    [row] = await read_workers(db, stale_after_seconds=5)
    assert statuses == ["running", "running"]
    assert row.status == "stopped"
