"""Rules around the rounds: a trial is run only by the round that made it (no loop resumes or takes it over, and a
restarted run cancels an interrupted one), Codegen gets the failure handed off, and the forge report opens the
manual-review issue itself only where no recovery run decides it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from taskmaster.db.models import Pipeline, Project, RecoveryRound
from taskmaster.pipelines import leases
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.runtime import Runtime
from taskmaster.workflows.recovery import RecoveryRequest, RecoveryWorkflow
from taskmaster.workflows.recovery.debuggers import AgentDebugger
from taskmaster.workflows.recovery.service import DebugRecovery, report_opens_issue
from tests.support.pipelines import FakeHarness, load
from tests.workflows.recovery.conftest import Rig
from tests.workflows.recovery.test_agents import ScriptedAgent

DEFINITION = "steps:\n  test: {run: pytest, retries: 1}\n"


async def _trial_of(harness: FakeHarness, source: Pipeline, *, owner: str) -> Pipeline:
    async with harness.db.transaction() as session:
        trial = Pipeline(project_id=harness.project.id, pipeline_type="validation", status="running",
                         commit_sha="e" * 40, trial_of=source.id, worker_id=owner)  # fmt: skip
        session.add(trial)
    return trial


async def test_no_loop_resumes_or_takes_over_a_trial(fake_harness: FakeHarness) -> None:
    source = await fake_harness.create(DEFINITION)
    trial = await _trial_of(fake_harness, source, owner="gone-worker")
    async with fake_harness.db.transaction() as session:
        row = await session.get(Pipeline, source.id)
        assert row is not None
        row.status, row.worker_id = "running", "gone-worker"
    async with fake_harness.db.session() as session:
        assert await leases.owned_by(session, "gone-worker") == [source.id]
        lost = await leases.find_lost(session, worker_id="w2", stale_after_seconds=1)
    assert [item.pipeline_id for item in lost] == [source.id] and trial.id not in {item.pipeline_id for item in lost}


async def test_a_restarted_recovery_run_cancels_the_trial_its_interrupted_round_left(
    fake_harness: FakeHarness,
) -> None:
    source = await fake_harness.create(DEFINITION)
    trial = await _trial_of(fake_harness, source, owner="w1")
    async with fake_harness.db.transaction() as session:
        session.add(RecoveryRound(pipeline_id=source.id, step_name="test", round=1, agent="openai", input_tokens=0,
                                  output_tokens=0, result="running", trial_pipeline_id=trial.id))  # fmt: skip
    runtime = Runtime(fake_harness.settings, fake_harness.db)
    handler = runtime.recovery(worker_id="w1").handler
    assert isinstance(handler, DebugRecovery)

    decision = await handler.recover(RecoveryRequest(fake_harness.project.id, source.id, "test", "e" * 40, "", 2))

    assert (decision.decision, decision.detail) == ("unrecovered", "the step no longer awaits recovery")
    ended, _, _ = await load(fake_harness.db, trial.id)
    assert ended.status == PipelineStatus.CANCELED.value
    async with fake_harness.db.session() as session:
        [round_] = (await session.scalars(select(RecoveryRound))).all()
    assert (round_.result, round_.detail) == ("error", "interrupted: the recovery run stopped during this round")
    await runtime.aclose()


async def test_the_forge_report_opens_the_issue_only_where_no_recovery_decides_it(fake_harness: FakeHarness) -> None:
    pipeline = await fake_harness.create(DEFINITION)
    trial = await _trial_of(fake_harness, pipeline, owner="w1")
    async with fake_harness.db.session() as session:
        assert await report_opens_issue(session, pipeline.id) is True
        assert await report_opens_issue(session, trial.id) is False
        assert await report_opens_issue(session, uuid.uuid4()) is False
    async with fake_harness.db.transaction() as session:
        project = await session.get(Project, fake_harness.project.id)
        assert project is not None
        project.settings = {"recovery": {"agent": "openai"}}
    async with fake_harness.db.session() as session:
        assert await report_opens_issue(session, pipeline.id) is False


async def test_with_codegen_the_failure_is_handed_off_and_no_issue_is_opened(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory(recovery={"agent": "codegen"})
    agent = ScriptedAgent(lambda checkout: None)
    agent.label = "codegen"
    debugger = AgentDebugger(lambda: agent, handoff=True)
    rig.runtime.debuggers = rig.runtime.debuggers.with_debuggers(codegen=lambda project: debugger)
    pipeline = await rig.pipeline()

    assert await rig.run(pipeline.id) is PipelineStatus.FAILED

    async with rig.db.session() as session:
        [round_] = (await session.scalars(select(RecoveryRound))).all()
    assert (round_.result, round_.agent, round_.patch, round_.trial_pipeline_id) == (
        "handed_off",
        "codegen",
        None,
        None,
    )
    done, steps, _ = await load(rig.db, pipeline.id)
    assert "handed to codegen: its fix comes as a new commit" in (steps["test"].error_message or "")
    assert done.review_issue_url is None and "FAILED: add 1 2" in agent.jobs[0].prompt


async def test_the_worker_runs_recovery_with_the_runtimes_debuggers(fake_harness: FakeHarness) -> None:
    from taskmaster.worker.runtime import WorkerRuntime

    runtime = Runtime(fake_harness.settings, fake_harness.db)
    worker = WorkerRuntime(runtime, mode="process")
    kind = worker.workflows.registry["recovery"]
    assert isinstance(kind, RecoveryWorkflow) and isinstance(kind.handler, DebugRecovery)
    assert kind.handler.services.debuggers is runtime.debuggers
    assert sorted(runtime.debuggers) == ["agentapi", "anthropic", "codegen", "ollama", "openai"]
    assert kind.handler.services.trial_owner == worker.worker_id
    await runtime.aclose()
