"""Two `taskmaster worker` processes on one PostgreSQL database: one is killed with SIGKILL mid-step, the other
takes the pipeline over once the dead one's heartbeat is stale; the killed attempt is recorded as `infra` ("agent
lost") and redone once, the steps that had finished are not redone, and no two attempts ever overlap."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from taskmaster.core.clock import as_utc
from taskmaster.db.session import Database
from tests.support import eventually, processes_with
from tests.support.pipelines import load
from tests.support.workers import SlowPipeline, WorkerProcess, Workers, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

STALE_AFTER = 3.0


def _worker(workers: Workers, tmp_path: Path, machine: Path, url: str, name: str) -> WorkerProcess:
    """A worker as on its own machine: own workspaces and mirrors; the database is what they share, with the secret
    key file under `tmp_path/state`, as a deployment shares it."""
    return workers.start(worker_env(tmp_path / "state", name, machine / name, STALE_AFTER, url), name)


async def test_sigkill_of_the_worker_running_a_step_loses_nothing_and_redoes_the_attempt_once(
    shared_database: tuple[Database, str], tmp_path: Path, reachable_dir: Path, workers: Workers
) -> None:
    db, url = shared_database
    slow = await SlowPipeline.queue(db, tmp_path / "repo", reachable_dir / "requester-mirrors")
    pipeline_id, marker = slow.id, slow.marker
    by_name = {name: _worker(workers, tmp_path, reachable_dir, url, name) for name in ("alpha", "beta")}
    await slow.running(*by_name.values())
    _, steps, attempts = await load(db, pipeline_id)
    victim_name = attempts["slow"][0].worker_id
    assert victim_name in by_name
    survivor_name = next(name for name in by_name if name != victim_name)
    await by_name[victim_name].kill()
    killed_at = time.monotonic()
    # The sandbox dies with the worker (bubblewrap's --die-with-parent): nothing of the killed attempt runs on.
    await eventually(_none_with(marker), what="the killed attempt's processes to end", timeout=5)
    lost_before_takeover = time.monotonic() - killed_at < STALE_AFTER
    survivor = by_name[survivor_name]
    await slow.ended(survivor, "the pipeline to finish on the surviving worker")
    assert await survivor.stop() == 0

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
    log = await slow.log()
    assert "started-1" in log and "started-2" in log and "done-2" in log
    assert "done-1" not in log
    taken = [r for r in survivor.records() if r.get("event") == "taking over pipeline of a lost worker"]
    assert [(r["pipeline_id"], r["previous_worker"]) for r in taken] == [(str(pipeline_id), victim_name)]
    assert processes_with(marker) == []


def _none_with(marker: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return processes_with(marker) == []

    return check
