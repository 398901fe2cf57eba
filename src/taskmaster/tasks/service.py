"""Task use cases: create, update, status rules, dependency edges, ready/next, atomic claim with a lease.

The caller owns the transaction. Use cases that write start with `lock_project` (projects/service.py
says why it must be the transaction's first statement).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from taskmaster.audit import service as audit
from taskmaster.core import graph
from taskmaster.core.clock import utcnow
from taskmaster.core.errors import Conflict, InvalidInput, NotFound
from taskmaster.core.ids import new_id
from taskmaster.db.leases import Leased, renew, stale
from taskmaster.db.models import Project, Task, TaskDependency
from taskmaster.db.prefix import is_prefix, resolve_id

# Task use cases work per project; the project lookups are re-exported for their callers.
from taskmaster.projects import settings as project_settings
from taskmaster.projects.service import get_project as get_project
from taskmaster.projects.service import lock_project as lock_project
from taskmaster.tasks.schemas import (
    OPEN_STATUSES,
    PlannedTask,
    TaskCreate,
    TaskOut,
    TaskStatus,
    TaskSummary,
    TaskUpdate,
)

DEFAULT_LEASE = timedelta(minutes=30)
UNKNOWN_COMPLEXITY = 11
"""Where a task without a complexity score sorts: after every scored one. The ready-order index uses it too."""
_TASKS = cast(Table, Task.__table__)
_EDGES = cast(Table, TaskDependency.__table__)
# Made once: an alias copies every column, which would otherwise cost more than the query itself on each call.
_DEPENDENCY = aliased(Task, name="dependency")
_PARENT = aliased(Task, name="parent")
_CHILD = aliased(Task, name="child")
_PARENT_EDGE = aliased(TaskDependency, name="parent_edge")


@dataclass(frozen=True)
class TaskFilter:
    status: TaskStatus | None = None
    type: str | None = None
    assignee: str | None = None
    parent_task_id: uuid.UUID | None = None
    top_level: bool = False


# -------------------------------------------------------------------------------- lookups


MAX_TASK_NUMBER = 2**31 - 1
"""Task numbers are 32-bit integer columns."""


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def get_task(session: AsyncSession, project_id: uuid.UUID, ref: str | int | uuid.UUID) -> Task:
    """A task of the project by id, by a unique prefix of its id, or by its number ("12" or 12)."""
    query = select(Task).where(Task.project_id == project_id)
    if isinstance(ref, uuid.UUID):
        query = query.where(Task.id == ref)
    elif isinstance(ref, int) or (ref.isascii() and ref.isdigit()):
        # '²'.isdigit() is true, hence isascii; a number beyond the column's range names no task, and would make
        # PostgreSQL fail the statement.
        if not 0 < int(ref) <= MAX_TASK_NUMBER:
            raise InvalidInput(f"task number {str(ref)[:40]} is out of range (1 to {MAX_TASK_NUMBER})")
        query = query.where(Task.number == int(ref))
    elif is_prefix(ref) or "-" in ref:
        query = query.where(
            Task.id == await resolve_id(session, Task.id, ref, "task", where=Task.project_id == project_id)
        )
    else:
        raise InvalidInput(f"{ref!r} is neither a task number nor a task id")
    task = await session.scalar(query)
    if task is None:
        raise NotFound(f"task {ref} does not exist in this project")
    return task


async def list_tasks(
    session: AsyncSession, project_id: uuid.UUID, *, where: TaskFilter | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[Task], int]:
    """A page of tasks in number order, and how many match in all."""
    query = _filtered(select(Task).where(Task.project_id == project_id), where or TaskFilter())
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = (await session.scalars(query.order_by(Task.number).limit(limit).offset(offset))).all()
    return list(rows), total


def _filtered(query: Select[Task], where: TaskFilter) -> Select[Task]:
    if where.status:
        query = query.where(Task.status == where.status)
    if where.type:
        query = query.where(Task.type == where.type)
    if where.assignee:
        query = query.where(Task.assignee == where.assignee)
    if where.parent_task_id:
        query = query.where(Task.parent_task_id == where.parent_task_id)
    if where.top_level:
        query = query.where(Task.parent_task_id.is_(None))
    return query


def to_out(task: Task) -> TaskOut:
    return TaskOut.model_validate(
        {column: getattr(task, column) for column in TaskOut.model_fields if column != "dependencies"}
        | {"dependencies": [uuid.UUID(str(d)) for d in task.dependencies]}
    )


def to_summary(task: Task) -> TaskSummary:
    return TaskSummary.model_validate(
        {column: getattr(task, column) for column in TaskSummary.model_fields if column != "dependencies"}
        | {"dependencies": [uuid.UUID(str(d)) for d in task.dependencies]}
    )


# -------------------------------------------------------------------------------- changes


async def create_task(session: AsyncSession, *, project: Project, spec: TaskCreate, actor: str = "system") -> Task:
    """Add a task (call `lock_project` first). Dependencies and parent must be tasks of the same project."""
    if spec.parent_task_id is not None:
        await get_task(session, project.id, spec.parent_task_id)
    number = (await session.scalar(select(func.max(Task.number)).where(Task.project_id == project.id)) or 0) + 1
    task = Task(
        project_id=project.id,
        number=number,
        title=spec.title,
        description=spec.description,
        details=spec.details,
        test_strategy=spec.test_strategy,
        type=spec.type,
        status=spec.status,
        priority=spec.priority,
        complexity=spec.complexity,
        parent_task_id=spec.parent_task_id,
        assignee=spec.assignee,
        source_section=spec.source_section,
        completed_at=utcnow() if spec.status == "done" else None,
        dependencies=[],
    )
    session.add(task)
    await session.flush()
    if spec.dependencies:
        await set_dependencies(session, task, spec.dependencies)
    await audit.record(
        session, actor=actor, action="task.create", target_type="task", target_id=task.id, project_id=project.id,
        data={"number": number, "title": spec.title},
    )  # fmt: skip
    return task


async def update_task(session: AsyncSession, task: Task, spec: TaskUpdate, *, actor: str = "system") -> Task:
    changes = spec.model_dump(exclude_unset=True)
    for field, value in changes.items():
        setattr(task, field, value)
    await session.flush()
    if changes:
        await audit.record(
            session, actor=actor, action="task.update", target_type="task", target_id=task.id,
            project_id=task.project_id, data={"fields": sorted(changes)},
        )  # fmt: skip
    return task


async def set_status(
    session: AsyncSession, task: Task, status: TaskStatus, *, cascade: bool = False, actor: str = "system"
) -> list[Task]:
    """Change a task's status by the rules people expect; returns every task that changed.

    A parent cannot become `done` while a subtask is open, unless `cascade`, which marks the open subtasks
    (at any depth) done too. `done` records `completed_at`; leaving `done` clears it. Going back to
    `pending` releases the claim.
    """
    changed = [task]
    if status == "done":
        open_descendants = await _open_descendants(session, task)
        if open_descendants and not cascade:
            names = ", ".join(f"#{t.number}" for t in open_descendants[:10])
            raise Conflict(
                f"task #{task.number} has open subtasks ({names}); finish them first or cascade the change",
                open_subtasks=[str(t.id) for t in open_descendants],
                override="cascade",
            )
        changed += open_descendants
    now = utcnow()
    for item in changed:
        previous = item.status
        item.status = status
        if status == "done":
            item.completed_at = item.completed_at if previous == "done" else now
        else:
            item.completed_at = None
        if status == "pending":
            item.claimed_at = None
            item.lease_expires_at = None
    await session.flush()
    for item in changed:
        await audit.record(
            session, actor=actor, action="task.set_status", target_type="task", target_id=item.id,
            project_id=item.project_id, data={"status": status},
        )  # fmt: skip
    return changed


async def _open_descendants(session: AsyncSession, task: Task) -> list[Task]:
    found: list[Task] = []
    frontier = [task.id]
    while frontier:
        children = (await session.scalars(select(Task).where(Task.parent_task_id.in_(frontier)))).all()
        found += [child for child in children if child.status in OPEN_STATUSES]
        frontier = [child.id for child in children]
    return found


async def delete_task(session: AsyncSession, task: Task, *, force: bool = False, actor: str = "system") -> None:
    """Remove a task (and its subtasks). Refused while other tasks depend on it, unless `force`."""
    dependents = (
        await session.scalars(
            select(Task.number).join(TaskDependency, TaskDependency.task_id == Task.id)
            .where(TaskDependency.depends_on_id == task.id).order_by(Task.number)
        )
    ).all()  # fmt: skip
    if dependents and not force:
        raise Conflict(
            f"tasks {', '.join(f'#{n}' for n in dependents)} depend on task #{task.number}; "
            "remove those dependencies first or force the removal",
            override="force",
        )
    neighbours = await _dependency_ids(session, [task.id])
    dependent_rows = await session.scalars(
        select(Task).where(Task.id.in_(select(TaskDependency.task_id).where(TaskDependency.depends_on_id == task.id)))
    )
    for dependent in dependent_rows.all():
        dependent.dependencies = [d for d in dependent.dependencies if d != str(task.id)]
    await session.delete(task)
    await session.flush()
    await audit.record(
        session, actor=actor, action="task.delete", target_type="task", target_id=task.id,
        project_id=task.project_id, data={"number": task.number, "title": task.title},
    )  # fmt: skip
    await refresh_dependents_counts(session, task.project_id, around=neighbours)


# -------------------------------------------------------------------------------- the graph


async def add_dependency(session: AsyncSession, task: Task, depends_on: Task, *, actor: str = "system") -> None:
    """Add the edge `task` depends on `depends_on`, refusing self, foreign, duplicate and cycle-forming edges."""
    if depends_on.id == task.id:
        raise InvalidInput(f"task #{task.number} cannot depend on itself")
    if depends_on.project_id != task.project_id:
        raise InvalidInput(f"task {depends_on.id} belongs to another project")
    if str(depends_on.id) in task.dependencies:
        raise Conflict(f"task #{task.number} already depends on #{depends_on.number}")
    path = await _path(session, depends_on.id, task.id)
    if path is not None:
        numbers = await _numbers(session, path)
        cycle = " -> ".join(f"#{numbers[node]}" for node in [task.id, *path])
        raise InvalidInput(f"that dependency would create a cycle: {cycle}", cycle=[str(n) for n in path])
    await session.execute(insert(TaskDependency).values(task_id=task.id, depends_on_id=depends_on.id))
    task.dependencies = [*task.dependencies, str(depends_on.id)]
    await session.flush()
    await audit.record(
        session, actor=actor, action="task.add_dependency", target_type="task", target_id=task.id,
        project_id=task.project_id, data={"depends_on": str(depends_on.id)},
    )  # fmt: skip
    await refresh_dependents_counts(session, task.project_id, around=[task.id, depends_on.id])


async def remove_dependency(session: AsyncSession, task: Task, depends_on: Task, *, actor: str = "system") -> None:
    if str(depends_on.id) not in task.dependencies:
        raise NotFound(f"task #{task.number} does not depend on #{depends_on.number}")
    await session.execute(
        delete(TaskDependency).where(TaskDependency.task_id == task.id, TaskDependency.depends_on_id == depends_on.id)
    )
    task.dependencies = [d for d in task.dependencies if d != str(depends_on.id)]
    await session.flush()
    await audit.record(
        session, actor=actor, action="task.remove_dependency", target_type="task", target_id=task.id,
        project_id=task.project_id, data={"depends_on": str(depends_on.id)},
    )  # fmt: skip
    await refresh_dependents_counts(session, task.project_id, around=[task.id, depends_on.id])


async def set_dependencies(session: AsyncSession, task: Task, depends_on: Sequence[uuid.UUID]) -> None:
    """Replace a new task's dependencies (each checked like `add_dependency`)."""
    for dependency_id in dict.fromkeys(depends_on):
        await add_dependency(session, task, await get_task(session, task.project_id, dependency_id))


async def _path(session: AsyncSession, start: uuid.UUID, goal: uuid.UUID) -> list[uuid.UUID] | None:
    """A dependency path start -> … -> goal, found breadth-first one query per level."""
    parents: dict[uuid.UUID, uuid.UUID | None] = {start: None}
    frontier = [start]
    while frontier:
        rows = (
            await session.execute(
                select(TaskDependency.task_id, TaskDependency.depends_on_id).where(TaskDependency.task_id.in_(frontier))
            )
        ).all()
        frontier = []
        for source, target in rows:
            if target in parents:
                continue
            parents[target] = source
            if target == goal:
                path = [target]
                while (previous := parents[path[-1]]) is not None:
                    path.append(previous)
                return list(reversed(path))
            frontier.append(target)
    return None


def _chunks(items: list[uuid.UUID], size: int) -> Iterable[list[uuid.UUID]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _numbers(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    rows = (await session.execute(select(Task.id, Task.number).where(Task.id.in_(list(ids))))).all()
    return {task_id: number for task_id, number in rows}


async def _dependency_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    rows = (
        await session.execute(
            select(TaskDependency.task_id, TaskDependency.depends_on_id).where(
                or_(TaskDependency.task_id.in_(ids), TaskDependency.depends_on_id.in_(ids))
            )
        )
    ).all()
    return [node for row in rows for node in row if node not in ids]


async def refresh_dependents_counts(
    session: AsyncSession, project_id: uuid.UUID, *, around: Sequence[uuid.UUID] | None = None
) -> int:
    """Recompute `dependents_count` for the connected part of the graph around `around` (or the whole project).

    Returns how many tasks changed. Cost grows with the size of that connected part, not of the project.
    """
    if around is None:
        edges = [
            (a, b)
            for a, b in (
                await session.execute(
                    select(TaskDependency.task_id, TaskDependency.depends_on_id)
                    .join(Task, Task.id == TaskDependency.task_id)
                    .where(Task.project_id == project_id)
                )
            ).all()
        ]
        nodes = set((await session.scalars(select(Task.id).where(Task.project_id == project_id))).all())
    else:
        nodes, edges = await _component(session, around)
    counts = graph.transitive_dependents_counts(nodes, edges)
    current: dict[uuid.UUID, int] = {}
    for chunk in _chunks(list(nodes), 5000):
        rows = await session.execute(select(Task.id, Task.dependents_count).where(Task.id.in_(chunk)))
        current.update({task_id: count for task_id, count in rows.all()})
    stale = [{"id": node, "dependents_count": count} for node, count in counts.items() if current.get(node) != count]
    if stale:
        await session.execute(update(Task), stale)  # ORM bulk update by primary key
    changed = len(stale)
    return changed


async def _component(
    session: AsyncSession, seeds: Sequence[uuid.UUID]
) -> tuple[set[uuid.UUID], list[tuple[uuid.UUID, uuid.UUID]]]:
    nodes = set(seeds)
    edges: set[tuple[uuid.UUID, uuid.UUID]] = set()
    frontier = list(seeds)
    while frontier:
        rows = (
            await session.execute(
                select(TaskDependency.task_id, TaskDependency.depends_on_id).where(
                    or_(TaskDependency.task_id.in_(frontier), TaskDependency.depends_on_id.in_(frontier))
                )
            )
        ).all()
        frontier = []
        for a, b in rows:
            edges.add((a, b))
            for node in (a, b):
                if node not in nodes:
                    nodes.add(node)
                    frontier.append(node)
    return nodes, sorted(edges)


# -------------------------------------------------------------------------------- ready, next, claim


@functools.cache
def _ready_statement(cancelled_satisfies: bool, by_type: bool, by_assignee: bool, lock: bool) -> Select[Task]:
    """The one definition of "ready": pending, its dependencies and its parent's satisfied, parent not blocked,
    no open subtask; best first.

    Built once per shape, with bound parameters for the values (`project_id`, `type`, `assignee`, `limit`):
    composing this statement costs more than PostgreSQL takes to run it, so `next` must not rebuild it per call.
    """
    satisfied = ["done", "cancelled"] if cancelled_satisfies else ["done"]
    dependency, parent, child = _DEPENDENCY, _PARENT, _CHILD
    blocked_by_dependency = exists().where(
        TaskDependency.task_id == Task.id,
        dependency.id == TaskDependency.depends_on_id,
        dependency.status.not_in(satisfied),
    )
    parent_blocked = exists().where(parent.id == Task.parent_task_id, parent.status == "blocked")
    # A subtask waits for what its parent waits for: the parent's dependencies are the subtask's too.
    parent_waiting = exists().where(
        _PARENT_EDGE.task_id == Task.parent_task_id,
        dependency.id == _PARENT_EDGE.depends_on_id,
        dependency.status.not_in(satisfied),
    )
    open_child = exists().where(child.parent_task_id == Task.id, child.status.in_(OPEN_STATUSES))
    query = select(Task).where(
        Task.project_id == bindparam("project_id"),
        Task.status == "pending",
        ~blocked_by_dependency,
        ~parent_blocked,
        ~parent_waiting,
        ~open_child,
    )
    if by_type:
        query = query.where(Task.type == bindparam("type"))
    if by_assignee:
        query = query.where(or_(Task.assignee.is_(None), Task.assignee == bindparam("assignee")))
    # The same order as the index `ix_tasks_ready_order`, so PostgreSQL walks it and stops at the first ready
    # row instead of sorting every pending task. `number` grows with creation time: it stands for age.
    query = query.order_by(
        Task.priority,
        Task.dependents_count.desc(),
        # A literal, not a bound parameter: only the exact expression of the index lets the planner use it.
        func.coalesce(Task.complexity, literal_column(str(UNKNOWN_COMPLEXITY))),
        Task.number,
    ).limit(bindparam("limit", type_=Integer(), literal_execute=True))
    return query.with_for_update(skip_locked=True, of=Task) if lock else query


def _ready_query(
    project: Project, where: TaskFilter | None = None, *, limit: int, lock: bool = False
) -> tuple[Select[Task], dict[str, Any]]:
    """The cached ready statement for this project and filter, with the values to execute it with."""
    where = where or TaskFilter()
    cancelled_satisfies = project_settings.load(project.settings).cancelled_satisfies_dependencies
    statement = _ready_statement(cancelled_satisfies, bool(where.type), bool(where.assignee), lock)
    params: dict[str, Any] = {"project_id": project.id, "limit": limit}
    if where.type:
        params["type"] = where.type
    if where.assignee:
        params["assignee"] = where.assignee
    return statement, params


async def ready_tasks(
    session: AsyncSession, project: Project, *, where: TaskFilter | None = None, limit: int = 100
) -> list[Task]:
    """Every ready task, best first (priority, then work unblocked, then complexity, then age)."""
    statement, params = _ready_query(project, where, limit=limit)
    return list((await session.scalars(statement, params)).all())


async def next_task(session: AsyncSession, project: Project, *, where: TaskFilter | None = None) -> Task | None:
    ready = await ready_tasks(session, project, where=where, limit=1)
    return ready[0] if ready else None


TASK_CLAIMS = Leased(Task, Task.id, Task.assignee, Task.status == "in_progress", expires_at=Task.lease_expires_at)
"""A claim is a lease with an expiry of its own (`db.leases`): the claimer renews it, or loses the task."""


async def release_expired_leases(session: AsyncSession, project_id: uuid.UUID) -> int:
    """Claims whose lease ran out go back to `pending` so another agent can take them."""
    result = await session.execute(
        update(Task)
        .where(Task.project_id == project_id, stale(TASK_CLAIMS, stale_after_seconds=0))
        .values(status="pending", claimed_at=None, lease_expires_at=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def renew_claim(
    session: AsyncSession,
    project_id: uuid.UUID,
    ref: str | int | uuid.UUID,
    *,
    assignee: str,
    lease: timedelta = DEFAULT_LEASE,
) -> Task:
    """Extend `assignee`'s claim on a task to `lease` from now (an agent still working on it says so).

    Raises `NotFound`, or `Conflict` when the task is not `in_progress` under `assignee` any more (its lease ran out
    and it went back to `pending`, or someone else claimed it).
    """
    task = await get_task(session, project_id, ref)
    if not await renew(session, TASK_CLAIMS, assignee, lease_seconds=lease.total_seconds(), row_id=task.id):
        raise Conflict(f"task {task.number} is not claimed by {assignee!r} (status {task.status})")
    await session.refresh(task)
    return task


async def renew_claims_held_by(session: AsyncSession, assignee: str, *, lease: timedelta = DEFAULT_LEASE) -> int:
    """Renew every claim `assignee` holds (a worker's heartbeat does this for the tasks it works on)."""
    return await renew(session, TASK_CLAIMS, assignee, lease_seconds=lease.total_seconds())


async def claim_task(
    session: AsyncSession,
    project_ref: str | uuid.UUID,
    *,
    assignee: str,
    lease: timedelta = DEFAULT_LEASE,
    where: TaskFilter | None = None,
) -> Task | None:
    """Atomically take the next ready task: `in_progress`, assigned, with a lease. None when nothing is ready.

    Call it first in its transaction. Concurrent claimers get different tasks: on PostgreSQL the candidate
    row is locked with SKIP LOCKED, so claimers pass each other by without queueing on the project; SQLite
    has one writer at a time, so there the project's write lock is taken first. Everywhere, the update also
    requires the row to be still `pending`.
    """
    postgres = _dialect(session) == "postgresql"
    project = await (get_project(session, project_ref) if postgres else lock_project(session, project_ref))
    await release_expired_leases(session, project.id)
    query, params = _ready_query(project, where, limit=1, lock=postgres)
    tried: set[uuid.UUID] = set()
    while True:
        candidate = await session.scalar(query.where(Task.id.not_in(tried)) if tried else query, params)
        if candidate is None:
            return None
        now = utcnow()
        result = await session.execute(
            update(Task)
            .where(and_(Task.id == candidate.id, Task.status == "pending"))
            .values(status="in_progress", assignee=assignee, claimed_at=now, lease_expires_at=now + lease)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            await session.refresh(candidate)
            await audit.record(
                session, actor=assignee, action="task.claim", target_type="task", target_id=candidate.id,
                project_id=project.id, data={"lease_seconds": int(lease.total_seconds())},
            )  # fmt: skip
            return candidate
        tried.add(candidate.id)


async def is_ready(session: AsyncSession, project: Project, task_id: uuid.UUID) -> bool:
    """Whether the task is ready, by the one definition of "ready" (`_ready_statement`)."""
    statement, params = _ready_query(project, limit=1)
    return await session.scalar(statement.where(Task.id == task_id), params) is not None


async def ready_among(session: AsyncSession, project: Project, task_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """Which of the tasks are ready (`is_ready` for many in one query)."""
    if not task_ids:
        return set()
    statement, params = _ready_query(project, limit=len(task_ids))
    return {task.id for task in (await session.scalars(statement.where(Task.id.in_(task_ids)), params)).all()}


async def claim_ready_task(
    session: AsyncSession, project_ref: str | uuid.UUID, task_id: uuid.UUID, *, assignee: str,
    lease: timedelta = DEFAULT_LEASE,
) -> Task | None:  # fmt: skip
    """Claim one given task if it is ready (`in_progress`, assigned, with a lease); None when it is not ready.
    Call it first in its transaction (it takes the project's write lock)."""
    project = await lock_project(session, project_ref)
    await release_expired_leases(session, project.id)
    if not await is_ready(session, project, task_id):
        return None
    now = utcnow()
    result = await session.execute(
        update(Task)
        .where(and_(Task.id == task_id, Task.status == "pending"))
        .values(status="in_progress", assignee=assignee, claimed_at=now, lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    task = await session.get_one(Task, task_id, populate_existing=True)
    await audit.record(
        session, actor=assignee, action="task.claim", target_type="task", target_id=task.id, project_id=project.id,
        data={"lease_seconds": int(lease.total_seconds())},
    )  # fmt: skip
    return task


# -------------------------------------------------------------------------------- bulk import


@dataclass(frozen=True)
class ImportResult:
    created: int
    numbers: tuple[int, int]
    """First and last number given to the new tasks."""
    replaced: int
    unresolved: list[tuple[str, str]]
    """(task key, dependency) pairs that named no task of the plan: kept in `dependencies` for `validate`."""


async def import_planned(
    session: AsyncSession,
    project: Project,
    planned: Sequence[PlannedTask],
    *,
    replace: bool = False,
    parent: Task | None = None,
    actor: str = "system",
) -> ImportResult:
    """Insert a plan (tasks, subtasks at any depth, dependencies by key) in bulk; call `lock_project` first.

    With `parent`, the plan's top-level tasks become subtasks of that task.

    Dependencies are resolved by key within the plan; "#12" names existing task number 12 of the project
    (so an appended plan can hang off existing work). What resolves to nothing is kept as written in the
    seed's `dependencies` column, for `validate` and `fix` to report and repair, but gets no edge row.
    With `replace`, the project's existing tasks are deleted first.
    """
    replaced = 0
    if replace:
        replaced = int(
            (await session.execute(delete(Task).where(Task.project_id == project.id))).rowcount or 0  # type: ignore[attr-defined]
        )
    start = (await session.scalar(select(func.max(Task.number)).where(Task.project_id == project.id))) or 0
    existing = {
        str(number): task_id
        for task_id, number in (
            await session.execute(select(Task.id, Task.number).where(Task.project_id == project.id))
        ).all()
    }
    flat: list[tuple[PlannedTask, str | None]] = []
    pending: list[tuple[PlannedTask, str | None]] = [(task, None) for task in reversed(planned)]
    while pending:  # depth first, parents before their subtasks, in plan order
        task, parent_key = pending.pop()
        flat.append((task, parent_key))
        pending.extend((child, task.key) for child in reversed(task.subtasks))
    ids: dict[str, uuid.UUID] = {}
    for task, _ in flat:
        if task.key in ids:
            raise InvalidInput(f"the plan has two tasks with key {task.key!r}")
        ids[task.key] = new_id()
    new_ids = set(ids.values())
    now = utcnow()
    rows: list[dict[str, object]] = []
    edges: list[dict[str, uuid.UUID]] = []
    unresolved: list[tuple[str, str]] = []
    touches_existing: set[uuid.UUID] = set()
    for offset, (task, parent_key) in enumerate(flat, start=1):
        task_id = ids[task.key]
        dependencies: list[str] = []
        for ref in task.dependencies:
            target = ids.get(ref) or (existing.get(ref[1:]) if ref.startswith("#") else None)
            if target is None:
                unresolved.append((task.key, ref))
                dependencies.append(ref)
                continue
            dependencies.append(str(target))
            if target != task_id:
                edges.append({"task_id": task_id, "depends_on_id": target})
            if target not in new_ids:
                touches_existing.add(target)
        rows.append(
            {
                "id": task_id,
                "project_id": project.id,
                "number": start + offset,
                "title": task.title,
                "description": task.description,
                "details": task.details,
                "test_strategy": task.test_strategy,
                "type": task.type,
                "status": task.status,
                "priority": task.priority,
                "complexity": task.complexity,
                "dependencies": dependencies,
                "parent_task_id": ids[parent_key] if parent_key else (parent.id if parent is not None else None),
                "assignee": task.assignee,
                "source_section": task.source_section,
                "completed_at": now if task.status == "done" else None,
                "extra": {"key": task.key, **task.extra},
                "created_at": now,
                "updated_at": now,
            }
        )
    unique_edges = list({(e["task_id"], e["depends_on_id"]): e for e in edges}.values())
    # Counts for the plan's own graph are known before anything is written; only a plan that hangs off
    # existing tasks needs the stored graph around those tasks recounted afterwards.
    counts = graph.transitive_dependents_counts(new_ids, [(e["task_id"], e["depends_on_id"]) for e in unique_edges
                                                          if e["depends_on_id"] in new_ids])  # fmt: skip
    for row in rows:
        row["dependents_count"] = counts.get(row["id"], 0)  # type: ignore[call-overload]
    # Core inserts: the ORM's bulk path adds nothing here and costs twice as much.
    for chunk in range(0, len(rows), 5000):
        await session.execute(insert(_TASKS), rows[chunk : chunk + 5000])
    for chunk in range(0, len(unique_edges), 5000):
        await session.execute(insert(_EDGES), unique_edges[chunk : chunk + 5000])
    if touches_existing:
        await refresh_dependents_counts(session, project.id, around=sorted(touches_existing))
    await audit.record(
        session, actor=actor, action="task.import", target_type="project", target_id=project.id,
        project_id=project.id, data={"created": len(rows), "replaced": replaced, "unresolved": len(unresolved)},
    )  # fmt: skip
    return ImportResult(
        created=len(rows), numbers=(start + 1, start + len(rows)), replaced=replaced, unresolved=unresolved
    )


async def export_planned(session: AsyncSession, project: Project) -> list[PlannedTask]:
    """The project's tasks as a plan: subtasks nested, dependencies by key, imported keys and fields kept."""
    tasks = list((await session.scalars(select(Task).where(Task.project_id == project.id).order_by(Task.number))).all())
    keys = {str(task.id): str(task.extra.get("key") or task.number) for task in tasks}
    planned: dict[uuid.UUID, PlannedTask] = {}
    for task in tasks:
        planned[task.id] = PlannedTask(
            key=keys[str(task.id)],
            title=task.title,
            description=task.description,
            details=task.details,
            test_strategy=task.test_strategy,
            type=task.type,
            status=task.status,
            priority=task.priority,
            complexity=task.complexity,
            dependencies=[keys.get(str(dep), str(dep)) for dep in task.dependencies],
            source_section=task.source_section,
            assignee=task.assignee,
            extra={name: value for name, value in task.extra.items() if name != "key"},
        )
    roots: list[PlannedTask] = []
    for task in tasks:
        if task.parent_task_id is not None and task.parent_task_id in planned:
            planned[task.parent_task_id].subtasks.append(planned[task.id])
        else:
            roots.append(planned[task.id])
    return roots


# -------------------------------------------------------------------------------- validate, fix


@dataclass(frozen=True)
class GraphFinding:
    """A problem `validate` found, or an edge `fix` removed, in terms people can act on."""

    kind: str
    task: int | str
    depends_on: int | str | None
    message: str


@dataclass(frozen=True)
class GraphReport:
    tasks: int
    dependencies: int
    findings: list[GraphFinding]


async def validate_graph(session: AsyncSession, project: Project) -> GraphReport:
    """Self, missing, duplicate and circular dependencies across all levels, in O(V+E).

    Reads the seed's `dependencies` column, which other tools may have written directly, so it can hold
    faults the service itself never creates.
    """
    nodes, edges, label = await _graph_input(session, project.id)
    problems = graph.validate(nodes, edges, label=label)
    findings = [
        GraphFinding(
            kind=problem.kind,
            task=_number_or_id(label, problem.edge[0] if problem.edge else problem.node),
            depends_on=_number_or_id(label, problem.edge[1]) if problem.edge else None,
            message=problem.message,
        )
        for problem in problems
    ]
    return GraphReport(tasks=len(nodes), dependencies=len(edges), findings=findings)


async def fix_graph(session: AsyncSession, project: Project, *, actor: str = "system") -> GraphReport:
    """Remove what `validate` finds (as few cycle edges as possible) and rebuild the edge rows to match.

    Call `lock_project` first. Returns the removals; afterwards `validate_graph` finds nothing.
    """
    nodes, edges, label = await _graph_input(session, project.id)
    result = graph.fix(nodes, edges, label=label)
    kept: dict[str, list[str]] = {node: [] for node in nodes}
    for dependent, dependency in result.kept:
        kept[dependent].append(dependency)
    rows = (await session.execute(select(Task.id, Task.dependencies).where(Task.project_id == project.id))).all()
    for task_id, current in rows:
        wanted = kept[str(task_id)]
        if [str(d) for d in current] != wanted:
            await session.execute(update(Task).where(Task.id == task_id).values(dependencies=wanted))
    await _sync_edge_rows(session, project.id, result.kept)
    await refresh_dependents_counts(session, project.id)
    findings = [
        GraphFinding(
            kind=removal.kind,
            task=_number_or_id(label, removal.edge[0]),
            depends_on=_number_or_id(label, removal.edge[1]),
            message=removal.message,
        )
        for removal in result.removed
    ]
    if findings:
        await audit.record(
            session, actor=actor, action="task.fix_dependencies", target_type="project", target_id=project.id,
            project_id=project.id, data={"removed": len(findings)},
        )  # fmt: skip
    return GraphReport(tasks=len(nodes), dependencies=len(result.kept), findings=findings)


async def _sync_edge_rows(session: AsyncSession, project_id: uuid.UUID, kept: Iterable[tuple[str, str]]) -> None:
    wanted = {(uuid.UUID(a), uuid.UUID(b)) for a, b in kept}
    existing = set(
        (
            await session.execute(
                select(TaskDependency.task_id, TaskDependency.depends_on_id)
                .join(Task, Task.id == TaskDependency.task_id)
                .where(Task.project_id == project_id)
            )
        ).all()
    )
    for task_id, depends_on_id in existing - wanted:
        await session.execute(
            delete(TaskDependency).where(
                TaskDependency.task_id == task_id, TaskDependency.depends_on_id == depends_on_id
            )
        )
    missing = [{"task_id": a, "depends_on_id": b} for a, b in wanted - existing]
    if missing:
        await session.execute(insert(TaskDependency), missing)


async def _graph_input(
    session: AsyncSession, project_id: uuid.UUID
) -> tuple[list[str], list[tuple[str, str]], Callable[[object], str]]:
    """Nodes and edges as strings (the column may hold anything), and a labeller that shows task numbers."""
    rows = (
        await session.execute(
            select(Task.id, Task.number, Task.dependencies).where(Task.project_id == project_id).order_by(Task.number)
        )
    ).all()
    numbers = {str(task_id): number for task_id, number, _ in rows}
    nodes = list(numbers)
    edges = [(str(task_id), str(dep)) for task_id, _, deps in rows for dep in deps]

    def label(node: object) -> str:
        number = numbers.get(str(node))
        return f"#{number}" if number is not None else f"unknown task {node}"

    return nodes, edges, label


def _number_or_id(label: Callable[[object], str], node: object) -> int | str:
    text = label(node)
    return int(text[1:]) if text.startswith("#") else str(node)
