"""A task claim is a lease (`db.leases`): the claimer renews it while it works, a heartbeat renews the claims its
worker holds, and a claim whose lease ran out goes back to `pending` for the next claimer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from taskmaster.core.clock import as_utc, utcnow
from taskmaster.core.errors import Conflict
from taskmaster.db.models import Task
from taskmaster.db.session import Database
from taskmaster.tasks import service
from taskmaster.tasks.schemas import TaskCreate
from tests.support import make_project


async def test_a_renewed_claim_outlives_its_first_lease_and_an_expired_one_is_claimed_again(db: Database) -> None:
    project = await make_project(db)
    async with db.transaction() as session:
        await service.create_task(session, project=await service.lock_project(session, project.id),
                                  spec=TaskCreate(title="long work"))  # fmt: skip
    async with db.transaction() as session:
        claimed = await service.claim_task(session, project.id, assignee="agent-a", lease=timedelta(seconds=60))
        assert claimed is not None
    async with db.transaction() as session:
        renewed = await service.renew_claim(session, project.id, claimed.number, assignee="agent-a",
                                            lease=timedelta(hours=2))  # fmt: skip
    assert renewed.lease_expires_at is not None
    assert as_utc(renewed.lease_expires_at) > utcnow() + timedelta(minutes=110)
    async with db.transaction() as session:
        with pytest.raises(Conflict, match="not claimed by 'agent-b'"):
            await service.renew_claim(session, project.id, claimed.number, assignee="agent-b")

    async with db.transaction() as session:  # the lease runs out: nobody renewed it
        await session.execute(
            update(Task).where(Task.id == claimed.id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    async with db.transaction() as session:
        again = await service.claim_task(session, project.id, assignee="agent-b")
    assert again is not None and (again.id, again.assignee) == (claimed.id, "agent-b")
    async with db.transaction() as session:
        with pytest.raises(Conflict):
            await service.renew_claim(session, project.id, claimed.number, assignee="agent-a")


async def test_renewing_the_claims_a_worker_holds_extends_only_its_own(db: Database) -> None:
    project = await make_project(db)
    async with db.transaction() as session:
        locked = await service.lock_project(session, project.id)
        for title in ("one", "two"):
            await service.create_task(session, project=locked, spec=TaskCreate(title=title))
    async with db.transaction() as session:
        mine = await service.claim_task(session, project.id, assignee="worker-1", lease=timedelta(seconds=30))
        theirs = await service.claim_task(session, project.id, assignee="worker-2", lease=timedelta(seconds=30))
    assert mine is not None and theirs is not None

    async with db.transaction() as session:
        assert await service.renew_claims_held_by(session, "worker-1", lease=timedelta(hours=1)) == 1
    async with db.session() as session:
        rows = {t.assignee: t for t in (await session.scalars(select(Task))).all()}
    assert as_utc(rows["worker-1"].lease_expires_at) > utcnow() + timedelta(minutes=50)  # type: ignore[arg-type]
    assert as_utc(rows["worker-2"].lease_expires_at) < utcnow() + timedelta(seconds=31)  # type: ignore[arg-type]


async def test_claiming_a_given_task_takes_it_only_while_it_is_ready(db: Database) -> None:
    project = await make_project(db)
    async with db.transaction() as session:
        locked = await service.lock_project(session, project.id)
        first = await service.create_task(session, project=locked, spec=TaskCreate(title="first"))
        second = await service.create_task(session, project=locked,
                                           spec=TaskCreate(title="second", dependencies=[first.id]))  # fmt: skip
        first_id, second_id = first.id, second.id
    async with db.transaction() as session:
        assert await service.claim_ready_task(session, project.id, second_id, assignee="codegen:r2") is None
    async with db.transaction() as session:
        claimed = await service.claim_ready_task(session, project.id, first_id, assignee="codegen:r1")
        assert claimed is not None and (claimed.status, claimed.assignee) == ("in_progress", "codegen:r1")
    async with db.transaction() as session:
        assert await service.claim_ready_task(session, project.id, first_id, assignee="codegen:r3") is None
        second_now = await session.get_one(Task, second_id)
        assert second_now.status == "pending"
