"""Two `taskmaster worker` processes on one PostgreSQL database: one is killed with SIGKILL mid-step, the other
takes the pipeline over once the dead one's heartbeat is stale; the killed attempt is recorded as `infra` ("agent
lost") and redone once, the steps that had finished are not redone, and no two attempts ever overlap."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from taskmaster.core.clock import as_utc
from taskmaster.db import migrate
from taskmaster.db.models import Project
from taskmaster.db.session import Database
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

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

STALE_AFTER = 3.0


@pytest.fixture
def processes() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for proc in started:
        proc.close()


@pytest.fixture
async def shared_database(tmp_path: Path) -> AsyncIterator[tuple[Database, str]]:
    """A new, migrated PostgreSQL database (as `taskmaster db migrate` leaves it) and its URL."""
    require_postgres()
    pg = PostgresDatabase()
    await asyncio.to_thread(pg.create)
    db = Database.from_settings(make_settings(tmp_path / "state", pg.url))
    await migrate.upgrade(db)
    try:
        yield db, pg.url
    finally:
        await db.dispose()
        await asyncio.to_thread(pg.drop)


def _worker(tmp_path: Path, machine: Path, url: str, name: str) -> WorkerProcess:
    """A worker as on its own machine: own state, workspaces and mirrors; the database is what they share."""
    return WorkerProcess(
        tmp_path,
        {
            "DATABASE_URL": url,
            "TASKMASTER_HOME": str(tmp_path / "state"),  # the shared secret key file, as a deployment shares it
            "TASKMASTER_WORKER_ID": name,
            "TASKMASTER_WORKER_HEARTBEAT_SECONDS": "0.5",
            "TASKMASTER_WORKER_STALE_AFTER_SECONDS": str(STALE_AFTER),
            "WSL2_INSTANCE_PATH": str(machine / name / "workspaces"),
            "TASKMASTER_MIRROR_ROOT": str(machine / name / "mirrors"),
        },
        name,
    ).start()


async def test_sigkill_of_the_worker_running_a_step_loses_nothing_and_redoes_the_attempt_once(
    shared_database: tuple[Database, str], tmp_path: Path, reachable_dir: Path, processes: list[WorkerProcess]
) -> None:
    db, url = shared_database
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
    by_name = {name: _worker(tmp_path, reachable_dir, url, name) for name in ("alpha", "beta")}
    processes.extend(by_name.values())

    async def slow_running() -> bool:
        for proc in by_name.values():
            assert proc.alive(), proc.log_path.read_text()
        return bool(processes_with(marker)) and "started-1" in await _log(db, pipeline_id)

    await eventually(slow_running, what="the slow step to run and log its start", timeout=90)
    _, steps, attempts = await load(db, pipeline_id)
    victim_name = attempts["slow"][0].worker_id
    assert victim_name in by_name
    survivor_name = next(name for name in by_name if name != victim_name)
    victim = by_name[victim_name]
    assert victim.proc is not None
    victim.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(victim.proc.wait, 30)
    killed_at = time.monotonic()
    # The sandbox dies with the worker (bubblewrap's --die-with-parent): nothing of the killed attempt runs on.
    await eventually(_none_with(marker), what="the killed attempt's processes to end", timeout=5)
    lost_before_takeover = time.monotonic() - killed_at < STALE_AFTER

    async def finished() -> bool:
        assert by_name[survivor_name].alive(), by_name[survivor_name].log_path.read_text()
        pipeline, _, _ = await load(db, pipeline_id)
        return pipeline.status not in {"pending", "queued", "running"}

    await eventually(finished, what="the pipeline to finish on the surviving worker", timeout=90)
    survivor = by_name[survivor_name]
    assert survivor.proc is not None
    survivor.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(survivor.proc.wait, 60) == 0

    pipeline, steps, attempts = await load(db, pipeline_id)
    assert (pipeline.status, pipeline.worker_id, pipeline.error_message) == ("success", survivor_name, None)
    assert {name: step.status for name, step in steps.items()} == dict.fromkeys(("first", "slow", "last"), "success")
    assert [(a.status, a.worker_id) for a in attempts["first"]] == [("success", victim_name)]  # not redone
    assert [(a.status, a.failure_reason, a.error_message, a.worker_id) for a in attempts["slow"]] == [
        ("failed", "infra", "agent lost", victim_name),
        ("success", None, None, survivor_name),
    ]
    assert steps["slow"].retry_count == 1
    lost, redone = attempts["slow"]
    assert lost.finished_at is not None and redone.started_at is not None
    assert as_utc(redone.started_at) >= as_utc(lost.finished_at)  # never two attempts of one step at once
    assert lost_before_takeover
    log = await _log(db, pipeline_id)
    assert "started-1" in log and "started-2" in log and "done-2" in log
    assert "done-1" not in log
    taken = [r for r in survivor.records() if r.get("event") == "taking over pipeline of a lost worker"]
    assert [(r["pipeline_id"], r["previous_worker"]) for r in taken] == [(str(pipeline_id), victim_name)]
    assert processes_with(marker) == []


def _none_with(marker: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return processes_with(marker) == []

    return check


async def _log(db: Database, pipeline_id: uuid.UUID) -> str:
    async with db.session() as session:
        return "".join(chunk.content for chunk in await read_logs(session, pipeline_id, step="slow"))
