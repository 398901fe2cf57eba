"""Who runs which pipeline: claims within the per-project limit, take-over of a dead worker's pipelines (exactly
one winner), the stuck-pipeline reaper, and an engine that stops its steps when it loses its pipeline or its lease."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from taskmaster.core.clock import utcnow
from taskmaster.db.models import Pipeline, PipelineStep, StepAttempt, Worker
from taskmaster.db.session import Database
from taskmaster.pipelines import leases, transitions
from taskmaster.pipelines.engine import LeaseLost
from taskmaster.pipelines.leases import Lease, Lost
from taskmaster.pipelines.states import PipelineStatus
from tests.support import make_project, processes_with, wait_for_process
from tests.support.pipelines import Harness, load


async def _pipeline(db: Database, project_id: uuid.UUID, **values: Any) -> uuid.UUID:
    async with db.transaction() as session:
        pipeline = Pipeline(project_id=project_id, status=values.pop("status", "pending"), **values)
        session.add(pipeline)
        await session.flush()
        return pipeline.id


async def _worker(db: Database, name: str, *, age_seconds: float, status: str = "running") -> None:
    now = utcnow()
    async with db.transaction() as session:
        session.add(
            Worker(
                name=name,
                hostname="h",
                pid=1,
                version="t",
                mode="process",
                status=status,
                started_at=now - timedelta(hours=1),
                last_heartbeat_at=now - timedelta(seconds=age_seconds),
            )
        )


async def _claim(db: Database, worker: str, limit: int = 8) -> uuid.UUID | None:
    return await leases.claim_next(db, worker, project_concurrency=limit)


async def _owner(db: Database, pipeline_id: uuid.UUID) -> str | None:
    async with db.session() as session:
        pipeline = await session.get(Pipeline, pipeline_id)
        assert pipeline is not None
        return pipeline.worker_id


async def test_claims_take_the_oldest_pending_pipeline_and_keep_each_project_under_its_limit(db: Database) -> None:
    busy, quiet = (await make_project(db, "busy")).id, (await make_project(db, "quiet")).id
    first = await _pipeline(db, busy)
    second = await _pipeline(db, busy)
    other = await _pipeline(db, quiet)
    await _pipeline(db, busy, status="success", worker_id="old")  # finished ones do not count

    assert await _claim(db, "w1", limit=1) == first
    # `busy` has one live owned pipeline: its next one waits, the other project's goes ahead.
    assert await _claim(db, "w2", limit=1) == other
    assert await _claim(db, "w2", limit=1) is None
    assert await _claim(db, "w2", limit=2) == second
    assert [await _owner(db, p) for p in (first, other, second)] == ["w1", "w2", "w2"]


async def test_concurrent_claims_never_take_one_pipeline_twice_nor_pass_the_project_limit(db: Database) -> None:
    project = (await make_project(db, "app")).id
    created = [await _pipeline(db, project) for _ in range(6)]

    claimed = await asyncio.gather(*[_claim(db, f"w{i}", limit=3) for i in range(10)])

    taken = [c for c in claimed if c is not None]
    assert len(taken) == len(set(taken)) == 3
    assert set(taken) == set(created[:3])


async def test_lost_pipelines_are_those_of_stale_stopped_or_unknown_workers_and_one_taker_wins(db: Database) -> None:
    project = (await make_project(db, "app")).id
    await _worker(db, "alive", age_seconds=1)
    await _worker(db, "stale", age_seconds=120)
    await _worker(db, "stopped", age_seconds=1, status="stopped")
    await _worker(db, "me", age_seconds=200)
    alive = await _pipeline(db, project, status="running", worker_id="alive")
    stale = await _pipeline(db, project, status="running", worker_id="stale")
    stopped = await _pipeline(db, project, status="queued", worker_id="stopped")
    unknown = await _pipeline(db, project, status="pending", worker_id="vanished")
    orphan = await _pipeline(db, project, status="running")  # running with no owner at all
    await _pipeline(db, project, status="pending")  # unclaimed: for claims, not the reaper
    await _pipeline(db, project, status="failed", worker_id="stale")  # finished: nobody's concern
    mine = await _pipeline(db, project, status="running", worker_id="me")

    async with db.session() as session:
        lost = await leases.find_lost(session, worker_id="me", stale_after_seconds=30)
        own = await leases.owned_by(session, "me")

    assert {(item.pipeline_id, item.previous_owner) for item in lost} == {
        (stale, "stale"),
        (stopped, "stopped"),
        (unknown, "vanished"),
        (orphan, None),
    }
    assert own == [mine]
    assert alive not in {item.pipeline_id for item in lost}

    async def take(worker: str, item: Lost) -> bool:
        async with db.transaction() as session:
            return await leases.take_over(session, item, worker_id=worker)

    item = next(i for i in lost if i.pipeline_id == stale)
    wins = await asyncio.gather(*[take(f"taker{i}", item) for i in range(5)])
    assert wins.count(True) == 1
    assert await _owner(db, stale) == f"taker{wins.index(True)}"
    orphaned = next(i for i in lost if i.pipeline_id == orphan)
    assert await take("a", orphaned) is True
    assert await take("b", orphaned) is False


async def test_the_reaper_ends_a_pipeline_running_past_the_limit_with_its_steps(harness_factory: Any) -> None:
    harness: Harness = await harness_factory("steps:\n  one: {run: 'true'}\n  two: {run: 'true', needs: [one]}\n")
    stuck = await harness.create()
    recent = await harness.create()
    async with harness.db.transaction() as session:
        for pipeline_id, age in ((stuck.id, timedelta(hours=2)), (recent.id, timedelta(minutes=5))):
            await session.execute(
                update(Pipeline)
                .where(Pipeline.id == pipeline_id)
                .values(status="running", started_at=utcnow() - age, worker_id="hung")
            )
    # `one` of the stuck pipeline has an attempt its hung worker never finishes.
    _, steps, _ = await load(harness.db, stuck.id)
    async with harness.db.transaction() as session:
        step = await session.get(PipelineStep, steps["one"].id)
        assert step is not None
        transitions.apply_step(step, transitions.STEP_START)
        session.add(StepAttempt(step_id=step.id, attempt=1, status="running", worker_id="hung", started_at=utcnow()))

    async with harness.db.transaction() as session:
        ended = await leases.end_stuck(session, max_seconds=3600, dialect=harness.db.dialect)

    assert ended == [stuck.id]
    pipeline, steps, attempts = await load(harness.db, stuck.id)
    assert (pipeline.status, pipeline.failure_reason) == ("timed_out", "timeout")
    assert pipeline.error_message is not None and "stuck: running for more than 3600 s" in pipeline.error_message
    assert pipeline.duration_ms is not None and pipeline.duration_ms >= 2 * 3600 * 1000
    assert {name: step.status for name, step in steps.items()} == {"one": "canceled", "two": "canceled"}
    assert [(a.status, a.error_message) for a in attempts["one"]] == [("canceled", "stopped: the pipeline was stuck")]
    untouched, _, _ = await load(harness.db, recent.id)
    assert untouched.status == "running"


def test_a_lease_is_valid_only_between_a_renewal_and_its_fence_time() -> None:
    now = [100.0]
    lease = Lease(10.0, clock=lambda: now[0])
    assert not lease.valid  # never renewed: a worker whose first heartbeat failed must not run anything
    lease.renewed()
    now[0] = 109.5
    assert lease.valid and lease.seconds_left() == pytest.approx(0.5)
    now[0] = 110.0
    assert not lease.valid


async def test_an_engine_whose_pipeline_is_taken_over_stops_its_step_and_leaves_the_attempt_to_the_new_owner(
    harness_factory: Any,
) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    harness: Harness = await harness_factory(
        f"steps:\n  work: {{run: 'test $TASKMASTER_ATTEMPT = 2 || sleep 30; echo {marker} done'}}\n"
    )
    created = await harness.create()
    first = asyncio.create_task(harness.engine(worker_id="first").run(created.id))

    await wait_for_process(marker)
    async with harness.db.transaction() as session:
        won = await leases.take_over(session, Lost(created.id, "first"), worker_id="second")
    assert won

    with pytest.raises(LeaseLost, match="taken over by worker second"):
        await asyncio.wait_for(first, 10)
    assert processes_with(marker) == []
    _, _, attempts = await load(harness.db, created.id)
    assert [(a.status, a.worker_id) for a in attempts["work"]] == [("running", "first")]  # not recorded by `first`

    assert await harness.engine(worker_id="second").run(created.id) is PipelineStatus.SUCCESS
    pipeline, _, attempts = await load(harness.db, created.id)
    assert [(a.status, a.failure_reason, a.error_message, a.worker_id) for a in attempts["work"]] == [
        ("failed", "infra", "agent lost", "first"),
        ("success", None, None, "second"),
    ]
    assert (pipeline.status, pipeline.worker_id) == ("success", "second")


async def test_an_engine_whose_lease_lapses_stops_its_steps_at_once(harness_factory: Any) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    harness: Harness = await harness_factory(f"steps:\n  work: {{run: 'sleep 30; echo {marker}'}}\n")
    created = await harness.create()
    now = [0.0]
    lease = Lease(60.0, clock=lambda: now[0])
    lease.renewed()
    running = asyncio.create_task(harness.engine(worker_id="w", lease=lease).run(created.id))

    await wait_for_process(marker)
    now[0] = 61.0  # no heartbeat has reached the database for longer than the lease

    with pytest.raises(LeaseLost, match="heartbeat lapsed"):
        await asyncio.wait_for(running, 10)
    assert processes_with(marker) == []
    pipeline, _, attempts = await load(harness.db, created.id)
    assert (pipeline.status, pipeline.worker_id) == ("running", "w")  # still this worker's, to resume or be taken
    assert [a.status for a in attempts["work"]] == ["running"]
