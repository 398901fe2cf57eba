"""The worker's workflow loop runs requested workflow runs by kind, records a crashing kind as a failed run, and takes
over the runs of a worker whose heartbeat went stale (starting them again)."""

from __future__ import annotations

from datetime import timedelta

from taskmaster.config import Settings
from taskmaster.core.clock import utcnow
from taskmaster.db.models import Worker, WorkflowRun
from taskmaster.db.session import Database
from taskmaster.worker.workflows import WorkflowLoop
from taskmaster.workflows import service
from taskmaster.workflows.base import RunInput, RunResult
from taskmaster.workflows.registry import WorkflowRegistry
from taskmaster.workflows.service import RunRequest
from tests.support import eventually, make_project


class Echo:
    name = "echo"

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    async def run(self, db: Database, run: RunInput) -> RunResult:
        self.seen.append((str(run.params.get("say")), run.attempt))
        return RunResult("succeeded", {"said": run.params.get("say")})


class Broken:
    name = "broken"

    async def run(self, db: Database, run: RunInput) -> RunResult:
        raise RuntimeError("the agent is down")


async def _finished(db: Database, run_id: object) -> WorkflowRun | None:
    async with db.session() as session:
        run = await session.get(WorkflowRun, run_id, populate_existing=True)
        return run if run is not None and run.status not in ("pending", "running") else None


async def test_the_loop_runs_requested_runs_and_records_a_crash_as_a_failed_run(
    db: Database, settings: Settings
) -> None:
    project = await make_project(db)
    echo = Echo()
    loop = WorkflowLoop(settings, db, worker_id="w1", registry=WorkflowRegistry([echo, Broken()]))
    async with db.transaction() as session:
        said = (await service.request_run(session, RunRequest(project.id, "echo", "a", params={"say": "hi"}))).run
        broke = (await service.request_run(session, RunRequest(project.id, "broken", "b"))).run
    loop.start()
    try:
        done = await eventually(lambda: _finished(db, said.id), what="the echo run to finish")
        failed = await eventually(lambda: _finished(db, broke.id), what="the broken run to finish")
    finally:
        await loop.stop()
    assert (done.status, done.result, done.attempts, done.worker_id) == ("succeeded", {"said": "hi"}, 1, None)
    assert (failed.status, failed.error_message) == ("failed", "RuntimeError: the agent is down")
    assert echo.seen == [("hi", 1)]


async def test_a_dead_workers_run_is_taken_over_and_started_again(db: Database, settings: Settings) -> None:
    project = await make_project(db)
    now = utcnow()
    async with db.transaction() as session:
        session.add(
            Worker(
                name="dead", hostname="h", pid=1, version="t", mode="process", status="running",
                started_at=now - timedelta(hours=1), last_heartbeat_at=now - timedelta(hours=1),
            )
        )  # fmt: skip
        run = (await service.request_run(session, RunRequest(project.id, "echo", "x", params={"say": "again"}))).run
    assert await service.claim_next(db, "dead", kinds=["echo"]) is not None
    echo = Echo()
    loop = WorkflowLoop(settings, db, worker_id="alive", registry=WorkflowRegistry([echo]))
    loop.start()
    try:
        done = await eventually(lambda: _finished(db, run.id), what="the taken-over run to finish")
    finally:
        await loop.stop()
    assert (done.status, done.attempts) == ("succeeded", 2)
    assert echo.seen == [("again", 2)]


class Sweeping(Echo):
    """A kind that tidies up after runs: counts its sweeps; the first one fails."""

    name = "sweeping"

    def __init__(self) -> None:
        super().__init__()
        self.sweeps = 0

    async def sweep(self, db: Database) -> int:
        self.sweeps += 1
        if self.sweeps == 1:
            raise RuntimeError("the forge is down")
        return 0


async def test_each_reap_lets_the_kinds_that_sweep_tidy_up_and_a_failing_sweep_stops_nothing(
    db: Database, settings: Settings
) -> None:
    project = await make_project(db)
    sweeping, echo = Sweeping(), Echo()
    loop = WorkflowLoop(settings, db, worker_id="w1", registry=WorkflowRegistry([sweeping, echo]))
    await loop.reap()  # the sweep fails: logged, and the reap goes on
    await loop.reap()
    assert sweeping.sweeps == 2
    async with db.transaction() as session:
        said = (await service.request_run(session, RunRequest(project.id, "echo", "a", params={"say": "on"}))).run
    loop.start()
    try:
        done = await eventually(lambda: _finished(db, said.id), what="the echo run to finish")
    finally:
        await loop.stop()
    assert done.status == "succeeded" and sweeping.sweeps >= 3
