"""Heartbeats: one row per worker name; `read_workers` judges liveness by age and status."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from taskmaster.core.clock import utcnow
from taskmaster.db.models import Worker
from taskmaster.db.session import Database
from taskmaster.db.workers import read_workers
from taskmaster.pipelines.leases import Lease
from taskmaster.worker.heartbeat import Heartbeat, WorkerIdentity


async def test_beating_again_updates_the_one_row_of_its_worker(db: Database) -> None:
    beat = Heartbeat(db, WorkerIdentity(name="w-1", mode="process", pid=41), interval_seconds=60)

    await beat.beat()
    await beat.beat()

    async with db.session() as session:
        rows = (await session.scalars(select(Worker))).all()
    assert len(rows) == 1
    assert (rows[0].name, rows[0].pid, rows[0].status, rows[0].stopped_at) == ("w-1", 41, "running", None)
    assert rows[0].last_heartbeat_at >= rows[0].started_at


async def test_a_restarted_worker_is_running_again_with_a_new_start_time(db: Database) -> None:
    first = Heartbeat(db, WorkerIdentity(name="w-1", mode="process", pid=1), interval_seconds=60)
    await first.start()
    await first.stop()
    second = Heartbeat(db, WorkerIdentity(name="w-1", mode="process", pid=2), interval_seconds=60)
    await second.start()
    try:
        [info] = await read_workers(db, stale_after_seconds=30)
    finally:
        await second.stop()

    assert (info.status, info.pid, info.stopped_at, info.alive) == ("running", 2, None, True)
    assert info.started_at == second.started_at > first.started_at


async def test_read_workers_reports_stale_and_stopped_workers_as_not_alive(db: Database) -> None:
    for name in ("fresh", "silent", "stopped"):
        await Heartbeat(db, WorkerIdentity(name=name, mode="process"), interval_seconds=60).beat()
    async with db.transaction() as session:
        await session.execute(
            update(Worker).where(Worker.name == "silent").values(last_heartbeat_at=utcnow() - timedelta(minutes=5))
        )
        await session.execute(update(Worker).where(Worker.name == "stopped").values(status="stopped"))
        assert await session.scalar(select(func.count()).select_from(Worker)) == 3

    workers = {w.name: w for w in await read_workers(db, stale_after_seconds=30)}

    assert list(workers) == ["fresh", "silent", "stopped"]
    assert workers["fresh"].alive
    assert workers["fresh"].heartbeat_age_seconds < 30
    assert not workers["silent"].alive
    assert workers["silent"].heartbeat_age_seconds >= 300
    assert workers["silent"].status == "running"
    assert not workers["stopped"].alive


async def test_a_beat_that_reaches_the_database_renews_the_lease_and_a_short_lived_beater_leaves_no_row(
    db: Database,
) -> None:
    lease = Lease(60.0)
    beat = Heartbeat(
        db, WorkerIdentity(name="cli:h:1", mode="cli"), interval_seconds=60, on_beat=lease.renewed, remove_on_stop=True
    )
    assert not lease.valid

    await beat.start()
    renewed = lease.valid
    async with db.session() as session:
        during = await session.scalar(select(Worker.mode).where(Worker.name == "cli:h:1"))
    await beat.stop()

    assert renewed and during == "cli"
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Worker)) == 0
