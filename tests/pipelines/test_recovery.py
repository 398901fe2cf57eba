"""Recovery as a state: a step that failed for its code awaits a recovery run (a workflow run), which applies
`recovered → retry` or `unrecovered → failed`; the engine holds no slot meanwhile and never crashes on the agent."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select

from taskmaster.db.models import Project, WorkflowRun
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.workflows import service
from taskmaster.workflows.recovery import RecoveryDecision, RecoveryRequest, RecoveryWorkflow, request_recovery
from tests.support import Scripted, eventually
from tests.support.pipelines import FakeHarness, load

BROKEN = "steps:\n  test: {run: pytest, retries: 1}\n  deploy: {run: 'make deploy', needs: [test]}\n"


class ScriptedAgent:
    """A recovery agent that answers from a script and remembers what it was asked."""

    def __init__(self, *answers: RecoveryDecision | Exception) -> None:
        self.answers = list(answers)
        self.asked: list[RecoveryRequest] = []

    async def recover(self, request: RecoveryRequest) -> RecoveryDecision:
        self.asked.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def _enable_recovery(harness: FakeHarness) -> None:
    async with harness.db.transaction() as session:
        project = await session.get(Project, harness.project.id)
        assert project is not None
        project.settings = {**(project.settings or {}), "recovery.agent": "scripted"}


async def _awaiting_recovery(harness: FakeHarness, pipeline_id: uuid.UUID) -> None:
    async def awaiting() -> bool:
        _, steps, _ = await load(harness.db, pipeline_id)
        return steps["test"].status == "awaiting_recovery"

    await eventually(awaiting, what="the step awaiting recovery")


async def _run_recovery(harness: FakeHarness, workflow: RecoveryWorkflow) -> WorkflowRun:
    """Claim the pending recovery run as a worker would, run it, finish it; return its row."""
    claimed = await eventually(lambda: service.claim_next(harness.db, "w1", kinds=["recovery"]), what="a recovery run")
    outcome = await workflow.run(harness.db, claimed)
    assert await service.finish(harness.db, claimed.run_id, "w1", outcome)
    async with harness.db.session() as session:
        return await service.get_run(session, claimed.run_id)


async def test_a_recovered_step_runs_again_and_the_pipeline_succeeds(fake_harness: FakeHarness) -> None:
    await _enable_recovery(fake_harness)
    fake_harness.executor.script("test", Scripted(exit_code=1, output=b"FAILED test_app.py::test_x\n"), Scripted())
    created = await fake_harness.create(BROKEN)
    engine = fake_harness.engine(recovery=request_recovery)
    running = asyncio.create_task(engine.run(created.id))
    await _awaiting_recovery(fake_harness, created.id)
    assert engine.slots.taken == 0, "a step awaiting recovery holds no slot"
    agent = ScriptedAgent(RecoveryDecision("recovered", "patched test_x"))
    run = await _run_recovery(fake_harness, RecoveryWorkflow(agent))

    assert await asyncio.wait_for(running, 20) is PipelineStatus.SUCCESS
    _, steps, attempts = await load(fake_harness.db, created.id)
    assert [(a.status, a.exit_code) for a in attempts["test"]] == [("failed", 1), ("success", 0)]
    assert (steps["test"].status, steps["test"].retry_count, steps["deploy"].status) == ("success", 1, "success")
    assert [(r.pipeline_id, r.step_name, r.log_tail) for r in agent.asked] == [
        (created.id, "test", "FAILED test_app.py::test_x\n")
    ]
    assert (run.kind, run.status, run.result["decision"], run.result["open_issue"]) == (
        "recovery", "succeeded", "recovered", False,
    )  # fmt: skip
    assert run.result["step_status"] == "retry_scheduled" and run.worker_id is None


async def test_an_unrecovered_step_fails_the_pipeline_and_the_run_asks_for_an_issue(fake_harness: FakeHarness) -> None:
    await _enable_recovery(fake_harness)
    fake_harness.executor.script("test", Scripted(exit_code=1, output=b"boom\n"))
    created = await fake_harness.create(BROKEN)
    running = asyncio.create_task(fake_harness.engine(recovery=request_recovery).run(created.id))

    run = await _run_recovery(fake_harness, RecoveryWorkflow(ScriptedAgent(RecoveryDecision("unrecovered", "no fix"))))

    assert await asyncio.wait_for(running, 20) is PipelineStatus.FAILED
    pipeline, steps, attempts = await load(fake_harness.db, created.id)
    assert len(attempts["test"]) == 1 and steps["deploy"].status == "skipped"
    assert (steps["test"].status, steps["test"].failure_reason) == ("failed", "code")
    assert steps["test"].error_message == "exit code 1; no fix"
    assert pipeline.failure_reason == "code" and "boom" in (pipeline.error_message or "")
    assert (run.result["decision"], run.result["open_issue"], run.result["step_status"]) == (
        "unrecovered", True, "failed",
    )  # fmt: skip


async def test_a_crashing_recovery_agent_is_an_unrecovered_decision_not_an_engine_crash(
    fake_harness: FakeHarness,
) -> None:
    await _enable_recovery(fake_harness)
    fake_harness.executor.script("test", Scripted(exit_code=3))
    created = await fake_harness.create(BROKEN)
    running = asyncio.create_task(fake_harness.engine(recovery=request_recovery).run(created.id))

    run = await _run_recovery(fake_harness, RecoveryWorkflow(ScriptedAgent(RuntimeError("the debugger is down"))))

    assert await asyncio.wait_for(running, 20) is PipelineStatus.FAILED
    _, steps, attempts = await load(fake_harness.db, created.id)
    assert [(a.status, a.failure_reason) for a in attempts["test"]] == [("failed", "code")]
    assert steps["test"].error_message == "exit code 3; the recovery agent failed: the debugger is down"
    assert run.status == "succeeded" and run.result["decision"] == "unrecovered"


async def test_without_a_recovery_agent_the_step_fails_at_once_and_no_run_is_requested(
    fake_harness: FakeHarness,
) -> None:
    fake_harness.executor.script("test", Scripted(exit_code=1))
    created = await fake_harness.create(BROKEN)

    assert await fake_harness.engine(recovery=request_recovery).run(created.id) is PipelineStatus.FAILED
    _, steps, attempts = await load(fake_harness.db, created.id)
    assert (steps["test"].status, len(attempts["test"])) == ("failed", 1)
    async with fake_harness.db.session() as session:
        assert (await session.scalars(select(WorkflowRun))).all() == []


async def test_a_canceled_pipeline_ignores_a_late_recovery_decision(fake_harness: FakeHarness) -> None:
    await _enable_recovery(fake_harness)
    fake_harness.executor.script("test", Scripted(exit_code=1))
    created = await fake_harness.create(BROKEN)
    engine = fake_harness.engine(recovery=request_recovery)
    running = asyncio.create_task(engine.run(created.id))
    await _awaiting_recovery(fake_harness, created.id)
    assert await fake_harness.engine().cancel(created.id, reason="stop") is PipelineStatus.CANCELED
    assert await asyncio.wait_for(running, 20) is PipelineStatus.CANCELED
    run = await _run_recovery(fake_harness, RecoveryWorkflow(ScriptedAgent(RecoveryDecision("recovered"))))

    _, steps, attempts = await load(fake_harness.db, created.id)
    assert steps["test"].status == "canceled" and len(attempts["test"]) == 1
    assert run.result["step_status"] is None
