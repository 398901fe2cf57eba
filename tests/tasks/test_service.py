"""Tasks on both databases: numbers, status rules, dependency edges, ready/next order, atomic claims."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from taskmaster.core.clock import utcnow
from taskmaster.core.errors import Conflict, InvalidInput
from taskmaster.db.models import Project, Task, TaskDependency
from taskmaster.db.session import Database
from taskmaster.projects import service as projects
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets.box import SecretBox, new_key
from taskmaster.tasks import service
from taskmaster.tasks.schemas import TaskCreate


async def _project(db: Database, name: str = "app", **settings: object) -> Project:
    async with db.transaction() as session:
        return await projects.create_project(
            session, spec=ProjectCreate(name=name, repository="/r", settings=settings), box=SecretBox([new_key()])
        )


async def _add(db: Database, project: Project, title: str, **fields: object) -> Task:
    async with db.transaction() as session:
        locked = await service.lock_project(session, project.id)
        return await service.create_task(session, project=locked, spec=TaskCreate(title=title, **fields))  # type: ignore[arg-type]


async def _status(db: Database, task: Task, status: str, **kw: bool) -> list[Task]:
    async with db.transaction() as session:
        await service.lock_project(session, task.project_id)
        fresh = await service.get_task(session, task.project_id, task.id)
        return await service.set_status(session, fresh, status, **kw)  # type: ignore[arg-type]


async def _next(db: Database, project: Project, **filters: object) -> Task | None:
    async with db.session() as session:
        fresh = await service.get_project(session, project.id)
        return await service.next_task(session, fresh, where=service.TaskFilter(**filters))  # type: ignore[arg-type]


async def test_tasks_get_numbers_and_dependencies_in_the_seed_shape(db: Database) -> None:
    project = await _project(db)
    first = await _add(db, project, "Set up the database")
    second = await _add(db, project, "Expose the API", dependencies=[first.id], priority=2)
    assert (first.number, second.number) == (1, 2)
    async with db.session() as session:
        out = service.to_out(await service.get_task(session, project.id, "2"))
        assert out.dependencies == [first.id]
        assert out.priority == 2 and out.status == "pending"
        edges = (await session.execute(select(TaskDependency.task_id, TaskDependency.depends_on_id))).all()
        assert edges == [(second.id, first.id)]
        assert (await service.get_task(session, project.id, "1")).dependents_count == 1


async def test_parent_cannot_be_done_while_a_subtask_is_open_unless_cascaded(db: Database) -> None:
    project = await _project(db)
    parent = await _add(db, project, "Checkout flow")
    child = await _add(db, project, "Card form", parent_task_id=parent.id)
    grandchild = await _add(db, project, "Card validation", parent_task_id=child.id)
    with pytest.raises(Conflict, match=r"open subtasks \(#2, #3\)"):
        await _status(db, parent, "done")
    changed = await _status(db, parent, "done", cascade=True)
    assert sorted(t.number for t in changed) == [1, 2, 3]
    async with db.session() as session:
        rows = (await session.scalars(select(Task).order_by(Task.number))).all()
        assert [t.status for t in rows] == ["done", "done", "done"]
        assert all(t.completed_at is not None for t in rows)
    await _status(db, grandchild, "in_progress")
    async with db.session() as session:
        assert (await service.get_task(session, project.id, 3)).completed_at is None


async def test_dependency_edges_refuse_self_duplicates_and_cycles_naming_the_cycle(db: Database) -> None:
    project = await _project(db)
    a = await _add(db, project, "a")
    b = await _add(db, project, "b", dependencies=[a.id])
    c = await _add(db, project, "c", dependencies=[b.id])
    async with db.transaction() as session:
        await service.lock_project(session, project.id)
        ta, tb, tc = [await service.get_task(session, project.id, n) for n in (1, 2, 3)]
        with pytest.raises(InvalidInput, match="cannot depend on itself"):
            await service.add_dependency(session, ta, ta)
        with pytest.raises(Conflict, match="already depends"):
            await service.add_dependency(session, tb, ta)
        with pytest.raises(InvalidInput, match=r"would create a cycle: #1 -> #3 -> #2 -> #1"):
            await service.add_dependency(session, ta, tc)
        await service.remove_dependency(session, tc, tb)
        await service.add_dependency(session, ta, tc)
    async with db.session() as session:
        counts = {t.number: t.dependents_count for t in (await session.scalars(select(Task))).all()}
    assert counts == {1: 1, 2: 0, 3: 2}  # b needs a, a needs c: c unblocks both
    assert c.id != a.id


async def test_next_orders_by_priority_then_unblocked_work_then_complexity_then_age(db: Database) -> None:
    project = await _project(db)
    low = await _add(db, project, "polish", priority=4)
    simple = await _add(db, project, "simple", priority=2, complexity=2)
    hard = await _add(db, project, "hard", priority=2, complexity=8)
    await _add(db, project, "needs hard", dependencies=[hard.id])
    await _add(db, project, "needs hard too", dependencies=[hard.id])
    assert (await _next(db, project)).title == "hard"  # type: ignore[union-attr]  # unblocks two tasks
    await _status(db, hard, "done")
    assert (await _next(db, project)).title == "simple"  # type: ignore[union-attr]
    await _status(db, simple, "done")
    titles = [t.title for t in await _ready(db, project)]
    assert titles == ["needs hard", "needs hard too", "polish"]
    assert (await _next(db, project, type="bug")) is None
    assert low.priority == 4


async def _ready(db: Database, project: Project) -> list[Task]:
    async with db.session() as session:
        return await service.ready_tasks(session, await service.get_project(session, project.id))


async def test_ready_respects_dependencies_parents_subtasks_and_the_cancelled_setting(db: Database) -> None:
    strict = await _project(db, "strict")
    lenient = await _project(db, "lenient", cancelled_satisfies_dependencies=True)
    for project in (strict, lenient):
        gone = await _add(db, project, "dropped idea")
        await _add(db, project, "after dropped idea", dependencies=[gone.id])
        await _status(db, gone, "cancelled")
    assert [t.title for t in await _ready(db, strict)] == []
    assert [t.title for t in await _ready(db, lenient)] == ["after dropped idea"]

    project = await _project(db, "tree")
    epic = await _add(db, project, "epic")
    await _add(db, project, "story", parent_task_id=epic.id)
    assert [t.title for t in await _ready(db, project)] == ["story"]  # the epic waits for its subtasks
    await _status(db, epic, "blocked")
    assert [t.title for t in await _ready(db, project)] == []  # a blocked parent holds its subtasks


async def test_claims_take_distinct_tasks_and_expired_leases_return(db: Database) -> None:
    project = await _project(db)
    for n in range(3):
        await _add(db, project, f"t{n}")
    claimed = []
    for agent in ("a1", "a2", "a3", "a4"):
        async with db.transaction() as session:
            task = await service.claim_task(session, project.id, assignee=agent, lease=timedelta(minutes=5))
            claimed.append(None if task is None else (task.number, task.assignee, task.status))
    assert claimed == [(1, "a1", "in_progress"), (2, "a2", "in_progress"), (3, "a3", "in_progress"), None]
    async with db.transaction() as session:
        await session.execute(update(Task).where(Task.number == 2).values(lease_expires_at=utcnow() - timedelta(1)))
    async with db.transaction() as session:
        again = await service.claim_task(session, "app", assignee="a4")
    assert again is not None and (again.number, again.assignee) == (2, "a4")


async def test_concurrent_claims_and_status_updates_lose_nothing(db: Database) -> None:
    project = await _project(db)
    async with db.transaction() as session:
        locked = await service.lock_project(session, project.id)
        for n in range(50):
            await service.create_task(session, project=locked, spec=TaskCreate(title=f"t{n}"))

    async def claim(agent: str) -> int | None:
        async with db.transaction() as session:
            task = await service.claim_task(session, project.id, assignee=agent)
            return None if task is None else task.number

    numbers = await asyncio.gather(*(claim(f"agent-{n}") for n in range(50)))
    assert sorted(n for n in numbers if n is not None) == list(range(1, 51))

    async def finish(number: int) -> None:
        async with db.transaction() as session:
            await service.lock_project(session, project.id)
            await service.set_status(session, await service.get_task(session, project.id, number), "done")

    await asyncio.gather(*(finish(n) for n in range(1, 51)))
    async with db.session() as session:
        statuses = (await session.scalars(select(Task.status))).all()
        assignees = set((await session.scalars(select(Task.assignee))).all())
    assert statuses == ["done"] * 50
    assert assignees == {f"agent-{n}" for n in range(50)}


async def test_a_subtask_waits_for_its_parents_dependencies(db: Database) -> None:
    project = await _project(db)
    base = await _add(db, project, "foundation")
    feature = await _add(db, project, "feature", dependencies=[base.id])
    await _add(db, project, "feature part", parent_task_id=feature.id)
    assert [t.title for t in await _ready(db, project)] == ["foundation"]
    await _status(db, base, "done")
    assert [t.title for t in await _ready(db, project)] == ["feature part"]
