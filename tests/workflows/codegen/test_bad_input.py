"""Bad input gets a clear error, a consistent task state and nothing pushed: a task that is not ready, an agent that
is not available, an agent that deletes the whole tree, writes outside its checkout, changes CI files the task does
not ask for or changes nothing, a remote that refuses the push; and a cancel undoes a live run."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from taskmaster.agents.base import AgentNotConfigured, AgentResult
from taskmaster.core.errors import InvalidInput
from taskmaster.costs import service as costs
from taskmaster.db.models import WorkflowRun, WorkflowStep
from taskmaster.projects import settings as project_settings
from taskmaster.workflows import service as runs
from taskmaster.workflows.codegen import service as codegen
from taskmaster.workflows.codegen.schemas import CodegenRequest
from tests.support import eventually
from tests.workflows.codegen.conftest import ScriptedAgent, SlowAgent, World


async def _runs(world: World) -> int:
    async with world.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(WorkflowRun)) or 0)


async def _fails_with(world: World, agent: ScriptedAgent, number: int) -> str:
    world.use_agent(agent)
    await world.start(CodegenRequest(tasks=[number], agent="agentapi"))
    outcome = await world.run_next()
    assert outcome.status == "failed"
    assert set(world.remote_branches()) == {"main"}, "nothing may be pushed"
    assert world.pulls() == [] and await world.pull_rows() == []
    task = await world.task(number)
    assert (task.status, task.assignee) == ("pending", None)
    return outcome.error or ""


async def test_a_task_that_is_not_ready_is_refused_by_number_and_nothing_is_requested(world: World) -> None:
    first = await world.add_task("Write the store")
    second = await world.add_task("Use the store", depends_on=[first])
    with pytest.raises(InvalidInput, match=r"not ready for code generation in project .*: #2 \(pending\)"):
        await world.start(CodegenRequest(tasks=[first, second]))
    assert await _runs(world) == 0
    assert (await world.task(first)).status == "pending"


async def test_no_ready_task_for_next_is_a_clear_error(world: World) -> None:
    with pytest.raises(InvalidInput, match=r"no task of project .* is ready"):
        await world.start(CodegenRequest(next=2))


async def test_an_agent_that_is_not_registered_is_refused_naming_it_before_anything_is_requested(
    world: World,
) -> None:
    number = await world.add_task("Write the store")
    with pytest.raises(AgentNotConfigured, match=r"'codegen' coding agent is not available.*available: offline"):
        await world.start(CodegenRequest(tasks=[number], agent="codegen"))
    assert await _runs(world) == 0


async def test_an_agent_that_deletes_the_whole_tree_is_refused(world: World) -> None:
    number = await world.add_task("Write the store")

    def wipe(checkout: Path) -> None:
        for entry in checkout.iterdir():
            if entry.name != ".git":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    error = await _fails_with(world, ScriptedAgent(wipe), number)
    assert error == "check: the agent deleted the whole tree (4 files)"


async def test_an_agent_that_writes_outside_its_checkout_is_refused(world: World) -> None:
    number = await world.add_task("Write the store")

    def escape(checkout: Path) -> None:
        (checkout / "src/app.py").write_text("print('changed')\n")
        (checkout.parent / "escaped.txt").write_text("outside\n")

    error = await _fails_with(world, ScriptedAgent(escape), number)
    assert error == "check: the agent wrote outside its checkout"


async def test_a_symlink_out_of_the_checkout_is_refused(world: World) -> None:
    number = await world.add_task("Write the store")
    error = await _fails_with(world, ScriptedAgent(lambda c: (c / "secrets").symlink_to("/etc/passwd")), number)
    assert error == "check: the agent made secrets a symbolic link out of the checkout (/etc/passwd)"


async def test_a_change_to_ci_files_the_task_does_not_ask_for_is_refused_and_allowed_when_it_does(
    world: World,
) -> None:
    number = await world.add_task("Write the store")

    def ci(checkout: Path) -> None:
        (checkout / ".taskmaster.yml").write_text("steps: {}\n")
        (checkout / ".github/workflows").mkdir(parents=True)
        (checkout / ".github/workflows/ci.yml").write_text("on: push\n")

    error = await _fails_with(world, ScriptedAgent(ci), number)
    assert error == (
        "check: the agent changed pipeline or CI configuration the task does not ask for: "
        ".github/workflows/ci.yml, .taskmaster.yml"
    )
    asked = await world.add_task("Speed up CI", details="Cache pip in .github/workflows and in .taskmaster.yml.")
    world.use_agent(ScriptedAgent(ci))
    await world.start(CodegenRequest(tasks=[asked], agent="agentapi"))
    assert (await world.run_next()).status == "succeeded"


async def test_an_agent_that_changes_nothing_fails_the_run_with_an_empty_diff(world: World) -> None:
    number = await world.add_task("Write the store")
    error = await _fails_with(world, ScriptedAgent(lambda checkout: None), number)
    assert error == "check: the agent changed nothing (empty diff)"


async def test_an_agent_that_fails_or_times_out_fails_the_run_with_its_reason(world: World) -> None:
    number = await world.add_task("Write the store")
    timed_out = AgentResult(
        ok=False, failure="timeout", error="no answer after 1800 s", transcript="> thinking...", input_tokens=7
    )
    error = await _fails_with(world, ScriptedAgent(lambda checkout: None, result=timed_out), number)
    assert error == "agent: the agent timed out: no answer after 1800 s"
    # What the agent said and spent stays on the run for `codegen show`, and its agent slot is free again.
    async with world.db.session() as session:
        [run] = await codegen.list_runs(session, project_id=world.project.id)
        shown = await codegen.get_run(session, run.id)
        held = await session.scalar(select(func.count()).select_from(WorkflowStep).where(WorkflowStep.name == "slot"))
        spent = await costs.total(session, workflow_run_id=run.id)
    assert (shown.transcript, shown.input_tokens, held) == ("> thinking...", 7, 0)
    assert [(s.stage, s.finished_at is not None) for s in shown.stages if s.stage == "agent"] == [("agent", True)]
    assert (spent.calls, spent.input_tokens) == (1, 7)


async def test_a_remote_that_refuses_the_push_fails_the_run_and_blocks_the_task_after_max_failures(
    world: World,
) -> None:
    hook = world.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected: pushes are refused here' >&2\nexit 1\n")
    hook.chmod(0o755)
    async with world.db.transaction() as session:
        project = await session.get_one(type(world.project), world.project.id)
        project.settings = project_settings.apply(project.settings, {"codegen.max_failures": 2})
    number = await world.add_task("Write the store")
    await world.start(CodegenRequest(tasks=[number]))
    first = await world.run_next()
    assert first.status == "failed" and first.result["stage"] == "push"
    assert "protected: pushes are refused here" in (first.error or "")
    assert (await world.task(number)).status == "pending"
    await world.start(CodegenRequest(tasks=[number]))
    second = await world.run_next()
    assert second.status == "failed" and second.result["task_status"] == "blocked"
    task = await world.task(number)
    assert (task.status, task.extra["codegen"]["failures"], task.extra["codegen"]["stage"]) == ("blocked", 2, "push")
    assert set(world.remote_branches()) == {"main"} and world.pulls() == []
    async with world.db.session() as session:
        [latest, _] = await codegen.list_runs(session, project_id=world.project.id)
    assert (latest.status, latest.stage) == ("failed", "push")


async def test_a_failure_after_the_push_deletes_the_branch_and_leaves_no_pull_request(world: World) -> None:
    number = await world.add_task("Write the store")
    world.fake.inject(500, {"message": "boom"}, method="POST", path_contains="/pulls", times=10)
    await world.start(CodegenRequest(tasks=[number]))
    outcome = await world.run_next()
    assert outcome.status == "failed" and outcome.result["stage"] == "pull_request"
    assert set(world.remote_branches()) == {"main"}
    assert world.pulls() == [] and (await world.task(number)).status == "pending"


async def test_canceling_a_pending_run_keeps_the_task_pending_and_a_finished_run_is_returned_as_it_is(
    world: World,
) -> None:
    number = await world.add_task("Write the store")
    [run_id] = await world.start(CodegenRequest(tasks=[number]))
    async with world.db.transaction() as session:
        canceled = await codegen.cancel(session, run_id, actor="tester")
    assert (canceled.status, canceled.stage) == ("canceled", "queued")
    async with world.db.transaction() as session:
        again = await codegen.cancel(session, run_id, actor="tester")
    assert again.status == "canceled"
    assert (await world.task(number)).status == "pending"


async def test_canceling_a_running_run_stops_its_agent_and_leaves_the_task_pending_with_nothing_pushed(
    world: World,
) -> None:
    number = await world.add_task("Write the store")
    agent = SlowAgent(30.0)
    world.use_agent(agent)
    [run_id] = await world.start(CodegenRequest(tasks=[number], agent="agentapi"))
    claimed = await runs.claim_next(world.db, "w1", kinds=["codegen"])
    assert claimed is not None
    running = asyncio.create_task(world.workflow.run(world.db, claimed))

    async def agent_started() -> bool:
        return agent.running == 1

    await eventually(agent_started, what="the agent to start", timeout=30)
    async with world.db.transaction() as session:
        canceled = await codegen.cancel(session, run_id, actor="tester")
    assert canceled.status == "canceled"
    outcome = await asyncio.wait_for(running, 10)
    assert (outcome.status, outcome.error) == ("failed", "canceled")
    assert agent.running == 0
    assert not await runs.finish(world.db, run_id, "w1", outcome)  # the cancel stays the run's end
    assert (await world.run_row(run_id)).status == "canceled"
    task = await world.task(number)
    assert (task.status, task.assignee) == ("pending", None)
    assert set(world.remote_branches()) == {"main"} and world.pulls() == []
