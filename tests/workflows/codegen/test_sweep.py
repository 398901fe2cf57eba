"""A run canceled while its worker was down (or whose worker died while undoing it) leaves its task `in_progress`,
its branch pushed and its pull request open: the sweep every worker's reaper runs undoes them and gives the task
back, once, and leaves alone the runs whose worker is alive to tidy up itself."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, update

from taskmaster.core.clock import utcnow
from taskmaster.db.models import Task, Worker, WorkflowRun, WorkflowStep
from taskmaster.workflows.codegen.schemas import CodegenRequest
from tests.workflows.codegen.conftest import World


async def _left_behind(world: World, worker: str) -> int:
    """A run that pushed its branch and opened its PR, then was canceled while `worker` ran it; nothing undone."""
    number = await world.add_task("Write the store")
    [run_id] = await world.start(CodegenRequest(tasks=[number]))
    assert (await world.run_next()).status == "succeeded"
    async with world.db.transaction() as session:
        await session.execute(delete(WorkflowStep).where(WorkflowStep.run_id == run_id, WorkflowStep.name == "link"))
        await session.execute(
            update(WorkflowRun)
            .where(WorkflowRun.id == run_id)
            .values(status="canceled", worker_id=worker, finished_at=utcnow(), error_message="canceled by tester")
        )
        await session.execute(update(Task).where(Task.id == world.tasks[number]).values(
            status="in_progress", assignee=f"codegen:{run_id}"))  # fmt: skip
    assert set(world.remote_branches()) == {"main", "taskmaster/1-write-the-store"}
    assert [p["state"] for p in world.pulls()] == ["open"]
    return number


async def test_a_canceled_run_whose_worker_is_gone_is_undone_and_its_task_given_back_once(world: World) -> None:
    number = await _left_behind(world, "gone-worker")  # no such worker: gone

    assert await world.workflow.sweep(world.db) == 1
    assert set(world.remote_branches()) == {"main"}
    assert [p["state"] for p in world.pulls()] == ["closed"]
    task = await world.task(number)
    assert (task.status, task.assignee) == ("pending", None)
    assert task.extra["codegen"]["stage"] == "canceled" and "tidied up" in task.extra["codegen"]["reason"]
    assert task.extra["codegen"]["failures"] == 0  # a cancel is not a failure of the task

    assert await world.workflow.sweep(world.db) == 0  # once
    closes = [r for r in world.fake.requests if r.method == "PATCH" and "/pulls/" in r.path]
    assert len(closes) == 1


async def test_a_canceled_run_whose_worker_is_alive_is_left_to_that_worker(world: World) -> None:
    async with world.db.transaction() as session:
        now = utcnow()
        session.add(Worker(name="alive", hostname="h", pid=1, version="t", mode="process", status="running",
                           started_at=now - timedelta(minutes=5), last_heartbeat_at=now))  # fmt: skip
    number = await _left_behind(world, "alive")

    assert await world.workflow.sweep(world.db) == 0
    assert (await world.task(number)).status == "in_progress"
    assert set(world.remote_branches()) == {"main", "taskmaster/1-write-the-store"}
