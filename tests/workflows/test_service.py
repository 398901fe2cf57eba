"""Workflow runs as a queue on SQLite and PostgreSQL: one live run per trigger, claims that never double, finish only
by the owner, and take-over of a dead worker's runs by exactly one worker."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from taskmaster.core.clock import utcnow
from taskmaster.db.base import Base
from taskmaster.db.models import Worker, WorkflowRun
from taskmaster.db.session import Database
from taskmaster.workflows import service
from taskmaster.workflows.base import RunResult
from taskmaster.workflows.service import RunRequest
from tests.conftest import PostgresDatabase, make_settings
from tests.support import make_project


async def _worker(db: Database, name: str, *, age_seconds: float) -> None:
    now = utcnow()
    async with db.transaction() as session:
        session.add(
            Worker(
                name=name, hostname="h", pid=1, version="t", mode="process", status="running",
                started_at=now - timedelta(hours=1), last_heartbeat_at=now - timedelta(seconds=age_seconds),
            )
        )  # fmt: skip


async def test_a_burst_of_identical_requests_makes_one_live_run_and_a_finished_one_allows_another(db: Database) -> None:
    project = await make_project(db)
    request = RunRequest(project_id=project.id, kind="review", subject="pr7:abc", commit_sha="abc")

    async def ask() -> tuple[str, bool]:
        async with db.transaction() as session:
            requested = await service.request_run(session, request)
            return str(requested.run.id), requested.created

    first = await ask()
    again = await ask()
    assert first[1] and again == (first[0], False)

    claimed = await service.claim_next(db, "w1", kinds=["review"])
    assert claimed is not None and str(claimed.run_id) == first[0] and claimed.attempt == 1
    assert await service.finish(db, claimed.run_id, "w1", RunResult("succeeded", {"findings": 0}))
    later = await ask()
    assert later[1] and later[0] != first[0]
    async with db.session() as session:
        runs = (await session.scalars(select(WorkflowRun).order_by(WorkflowRun.created_at))).all()
    assert [(r.status, r.trigger_key, r.result) for r in runs] == [
        ("succeeded", "review:pr7:abc", {"findings": 0}), ("pending", "review:pr7:abc", {}),
    ]  # fmt: skip


async def test_requests_made_together_reuse_live_runs_and_fold_repeats(
    db: Database,
) -> None:
    project = await make_project(db)
    other = await make_project(db)
    ask = [RunRequest(project_id=project.id, kind="codegen", subject=f"task:{n}") for n in (1, 2, 2, 3)]
    async with db.transaction() as session:
        live = (await service.request_run(session, ask[1])).run
    async with db.transaction() as session:
        made = await service.request_runs(session, ask)
        assert [m.created for m in made] == [True, False, False, True]
        assert made[1].run.id == made[2].run.id == live.id
    async with db.session() as session:
        stored = (await session.scalars(select(WorkflowRun.trigger_key).order_by(WorkflowRun.trigger_key))).all()
    assert stored == ["codegen:task:1", "codegen:task:2", "codegen:task:3"]

    with pytest.raises(ValueError, match="one project"):
        async with db.transaction() as session:
            await service.request_runs(session, [ask[0], RunRequest(project_id=other.id, kind="codegen", subject="x")])


@pytest.mark.postgres
async def test_a_batch_that_loses_the_race_for_one_trigger_returns_the_winners_run(
    pg_database: PostgresDatabase, tmp_path: Path
) -> None:
    """Another transaction makes task 4's run after the batch looked for live runs and before it inserts: the batch
    waits on the unique index, loses, and asks again one by one, returning the run that won. (On SQLite writers
    take turns, so the race cannot happen there.)"""
    db = Database.from_settings(make_settings(tmp_path, pg_database.url))
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        project = await make_project(db)
        ask = [RunRequest(project_id=project.id, kind="codegen", subject=f"task:{n}") for n in (3, 4)]
        async with db.transaction() as winner:
            won = (await service.request_run(winner, ask[1])).run
            await winner.flush()
            async with db.transaction() as session:
                batch = asyncio.ensure_future(service.request_runs(session, ask))
                await asyncio.sleep(0.3)  # the batch's insert now waits on the winner's uncommitted row
                assert not batch.done()
                await winner.commit()
                made = await batch
                assert [(m.run.trigger_key, m.created) for m in made] == [
                    ("codegen:task:3", True), ("codegen:task:4", False),
                ]  # fmt: skip
                assert made[1].run.id == won.id
    finally:
        await db.dispose()


async def test_concurrent_claims_take_each_run_once_and_only_kinds_asked_for(db: Database) -> None:
    project = await make_project(db)
    async with db.transaction() as session:
        for n in range(4):
            await service.request_run(session, RunRequest(project_id=project.id, kind="review", subject=f"s{n}"))
        await service.request_run(session, RunRequest(project_id=project.id, kind="codegen", subject="other"))

    claims = await asyncio.gather(*(service.claim_next(db, f"w{n}", kinds=["review"]) for n in range(6)))
    taken = [claim.run_id for claim in claims if claim is not None]
    assert len(taken) == 4 == len(set(taken))
    assert await service.claim_next(db, "w9", kinds=["review"]) is None


async def test_only_the_owner_finishes_and_a_dead_workers_run_is_taken_over_once(db: Database) -> None:
    project = await make_project(db)
    await _worker(db, "dead", age_seconds=600)
    await _worker(db, "alive", age_seconds=1)
    async with db.transaction() as session:
        await service.request_run(session, RunRequest(project_id=project.id, kind="recovery", subject="p:s:1"))
    claimed = await service.claim_next(db, "dead", kinds=["recovery"])
    assert claimed is not None
    assert not await service.finish(db, claimed.run_id, "alive", RunResult("succeeded"))

    async with db.session() as session:
        lost = await service.find_lost(session, worker_id="alive", stale_after_seconds=30)
        assert await service.find_lost(session, worker_id="dead", stale_after_seconds=30) == []
    assert [(item.row_id, item.previous_owner) for item in lost] == [(claimed.run_id, "dead")]
    async with db.transaction() as session:
        assert await service.take_over_run(session, lost[0], worker_id="alive")
    async with db.transaction() as session:
        assert not await service.take_over_run(session, lost[0], worker_id="third")

    restarted = await service.restart(db, claimed.run_id, "alive")
    assert restarted is not None and restarted.attempt == 2
    assert not await service.finish(db, claimed.run_id, "dead", RunResult("succeeded"))
    assert await service.finish(db, claimed.run_id, "alive", RunResult("failed", error="no reviewer"))
    async with db.session() as session:
        run = await service.get_run(session, claimed.run_id)
    assert (run.status, run.error_message, run.attempts, run.worker_id) == ("failed", "no reviewer", 2, None)
    assert await service.restart(db, claimed.run_id, "alive") is None
