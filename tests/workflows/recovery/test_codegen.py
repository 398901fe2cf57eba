"""Recovery with Codegen, through the real Codegen client against the fake Codegen server: the failure goes as a
follow-up to the run that made the pull request (its id recorded on the pipeline), or to a new run when there is
none; either way the round is a hand-off and no issue is opened. The runtime makes this debugger from settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from taskmaster.agents.codegen.agent import CodegenAgent, PollPolicy
from taskmaster.db.models import Pipeline, RecoveryRound
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.runtime import Runtime
from taskmaster.workflows.recovery.debuggers import CodegenDebugger
from tests.agents.codegen.conftest import make_client
from tests.support.codegen_server import API_KEY, ORG_ID, FakeCodegen, serve_codegen
from tests.support.pipelines import load
from tests.workflows.recovery.conftest import BRANCH, Rig

FAST_POLL = PollPolicy(initial=0.01, factor=1.5, maximum=0.05, resume_settle=0.2)


@pytest.fixture
def codegen() -> Iterator[FakeCodegen]:
    with serve_codegen() as fake:
        yield fake


def _with_codegen(rig: Rig, fake: FakeCodegen) -> None:
    debugger = lambda project: CodegenDebugger(CodegenAgent(make_client(fake), poll=FAST_POLL), timeout=20)  # noqa: E731
    rig.runtime.debuggers = rig.runtime.debuggers.with_debuggers(codegen=debugger)


async def test_the_failure_is_sent_as_a_follow_up_to_the_run_that_made_the_pull_request(
    rig_factory: Callable[..., Any], codegen: FakeCodegen
) -> None:
    rig: Rig = await rig_factory(recovery={"agent": "codegen"})
    _with_codegen(rig, codegen)
    made = await codegen_run(codegen)
    pipeline = await rig.pipeline()
    async with rig.db.transaction() as session:
        row = await session.get(Pipeline, pipeline.id)
        assert row is not None
        row.agentapi_session_id = made

    assert await rig.run(pipeline.id) is PipelineStatus.FAILED

    [follow_up] = codegen.runs[int(made)].follow_ups
    assert "FAILED: add 1 2 gave -1, expected 3" in follow_up
    assert len(codegen.sent("/agent/run", "POST")) == 1, "no second run is created"
    async with rig.db.session() as session:
        [round_] = (await session.scalars(select(RecoveryRound))).all()
    assert (round_.result, round_.agent, round_.patch) == ("handed_off", "codegen", None)
    assert f"(run {made})" in (round_.explanation or "")
    done, steps, _ = await load(rig.db, pipeline.id)
    assert "handed to codegen" in (steps["test"].error_message or "") and done.review_issue_url is None


async def test_without_a_recorded_run_a_new_run_is_asked_for_a_pull_request_into_the_failing_branch(
    rig_factory: Callable[..., Any], codegen: FakeCodegen
) -> None:
    rig: Rig = await rig_factory(recovery={"agent": "codegen"})
    codegen.add_repo(rig.project.name)
    _with_codegen(rig, codegen)
    pipeline = await rig.pipeline()

    assert await rig.run(pipeline.id) is PipelineStatus.FAILED

    [created] = codegen.sent("/agent/run", "POST")
    assert "FAILED: add 1 2 gave -1, expected 3" in created.body["prompt"]
    assert f"into `{BRANCH}`" in created.body["prompt"] and created.body["repo_id"] == 100
    assert created.body["metadata"]["pipeline_id"] == str(pipeline.id)
    async with rig.db.session() as session:
        [round_] = (await session.scalars(select(RecoveryRound))).all()
    assert (round_.result, round_.agent) == ("handed_off", "codegen")


async def test_the_runtime_makes_the_codegen_debugger_from_its_settings(
    rig_factory: Callable[..., Any], codegen: FakeCodegen
) -> None:
    rig: Rig = await rig_factory(recovery={"agent": "codegen"})
    configured = rig.settings.model_copy(
        update={
            "codegen": rig.settings.codegen.model_copy(
                update={"api_key": SecretStr(API_KEY), "org_id": str(ORG_ID), "api_url": codegen.url}
            )
        }
    )
    runtime = Runtime(configured, rig.db, box=rig.runtime.box)
    try:
        debugger = runtime.debuggers.make("codegen", rig.project)
        assert isinstance(debugger, CodegenDebugger) and debugger.needs_checkout is False
        await debugger.aclose()
    finally:
        await runtime.aclose()


async def codegen_run(fake: FakeCodegen) -> str:
    """A finished Codegen run (as the code-generation workflow would have made for the pull request): its id."""
    client = make_client(fake)
    try:
        run = await client.create_run("Implement task 1", repo_id=None)
    finally:
        await client.aclose()
    return str(run.id)
