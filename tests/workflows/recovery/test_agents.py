"""A debug agent through the `CodingAgent` protocol edits its own fresh checkout of the commit under test; the
checkout's diff is the patch, checked, tried and pushed to the local repository like a model's. Also the other
provider: Anthropic's SDK against its fake server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select

from taskmaster.agents.base import AgentKind, AgentResult, CodingJob, StartedCallback
from taskmaster.config.settings import LlmSettings
from taskmaster.db.models import AiCall, Project, RecoveryRound
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.workflows.recovery.base import DebuggerRegistry
from taskmaster.workflows.recovery.debuggers import AgentDebugger
from tests.agents.llm.fakes import ANTHROPIC_KEY, serve, user_prompt
from tests.support.git import git
from tests.support.pipelines import load
from tests.workflows.recovery.conftest import BRANCH, BROKEN, FIXED, Rig


class ScriptedAgent:
    """A coding agent whose work is a function of its checkout; it remembers the jobs it got."""

    kind: AgentKind = "agentapi"
    label = "agentapi:scripted"

    def __init__(self, work: Callable[[Path], None]) -> None:
        self.work = work
        self.jobs: list[CodingJob] = []
        self.seen: list[str] = []
        self.closed = 0

    async def run(self, job: CodingJob, *, on_started: StartedCallback | None = None) -> AgentResult:
        self.jobs.append(job)
        self.seen.append((job.checkout / "app.sh").read_text())
        self.work(job.checkout)
        return AgentResult(ok=True, summary="add subtracted; now it adds", input_tokens=100, output_tokens=50)

    async def aclose(self) -> None:
        self.closed += 1


def _with_agent(rig: Rig, agent: ScriptedAgent) -> None:
    rig.runtime.debuggers = rig.runtime.debuggers.with_debuggers(agentapi=lambda project: AgentDebugger(lambda: agent))


async def test_a_scripted_debug_agent_fixes_its_checkout_and_the_fix_is_pushed_to_the_local_repository(
    rig_factory: Callable[..., Any],
) -> None:
    rig: Rig = await rig_factory(recovery={"agent": "agentapi", "mode": "push"})
    agent = ScriptedAgent(lambda checkout: (checkout / "app.sh").write_text(FIXED))
    _with_agent(rig, agent)
    pipeline = await rig.pipeline()

    assert await rig.run(pipeline.id) is PipelineStatus.SUCCESS

    [job] = agent.jobs
    assert agent.seen == [BROKEN] and agent.closed == 1, "a fresh checkout of the commit under test, then closed"
    assert "FAILED: add 1 2 gave -1, expected 3" in job.prompt and job.branch == BRANCH
    assert not job.checkout.exists(), "the agent's checkout is removed after the round"
    async with rig.db.session() as session:
        [round_] = (await session.scalars(select(RecoveryRound))).all()
        [call] = (await session.scalars(select(AiCall))).all()
    assert (round_.result, round_.agent, round_.input_tokens, round_.output_tokens) == (
        "pushed", "agentapi:scripted", 100, 50,
    )  # fmt: skip
    assert "+add() { echo $(($1 + $2)); }" in (round_.patch or "")
    assert (call.purpose, call.provider, call.template_name, call.input_tokens) == (
        "recovery", "agentapi:scripted", "recovery.debug", 100,
    )  # fmt: skip
    assert git(rig.repo, "rev-parse", BRANCH) == round_.fix_sha
    assert f"Taskmaster-Fix: {pipeline.id}" in git(rig.repo, "log", "-1", "--format=%B", BRANCH)


async def test_an_agent_that_deletes_the_test_and_plants_a_symlink_is_refused(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory(recovery={"agent": "agentapi", "mode": "push", "max_rounds": 1})

    def hostile(checkout: Path) -> None:
        (checkout / "tests" / "test_add.sh").unlink()
        os.symlink("/etc/passwd", checkout / "leak")

    _with_agent(rig, ScriptedAgent(hostile))
    pipeline = await rig.pipeline()

    assert await rig.run(pipeline.id) is PipelineStatus.FAILED

    _, steps, _ = await load(rig.db, pipeline.id)
    async with rig.db.session() as session:
        [round_] = (await session.scalars(select(RecoveryRound))).all()
    assert round_.result == "refused" and round_.trial_pipeline_id is None
    assert "tests/test_add.sh: the patch deletes a test file" in (round_.detail or "")
    assert "leak: the patch makes a symbolic link" in (round_.detail or "")
    assert steps["test"].status == "failed" and git(rig.repo, "rev-parse", BRANCH) == rig.head_sha


async def test_an_unknown_recovery_agent_fails_the_step_with_the_reason(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory(recovery={"agent": "codegen"})
    rig.runtime.debuggers = DebuggerRegistry({k: v for k, v in rig.runtime.debuggers.items() if k != "codegen"})
    pipeline = await rig.pipeline()

    assert await rig.run(pipeline.id) is PipelineStatus.FAILED

    _, steps, _ = await load(rig.db, pipeline.id)
    assert "recovery could not run: no recovery agent 'codegen' in this process" in (steps["test"].error_message or "")


async def test_codegen_without_its_key_fails_the_step_naming_the_setting(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory(recovery={"agent": "codegen"})
    pipeline = await rig.pipeline()

    assert await rig.run(pipeline.id) is PipelineStatus.FAILED

    _, steps, _ = await load(rig.db, pipeline.id)
    assert "recovery could not run: the codegen agent needs CODEGEN_API_KEY" in (steps["test"].error_message or "")


async def test_an_anthropic_model_answers_through_the_real_sdk_and_its_fix_is_pushed(
    rig_factory: Callable[..., Any],
) -> None:
    with serve("anthropic") as (url, fake):
        llm = LlmSettings(anthropic_api_key=SecretStr(ANTHROPIC_KEY), anthropic_base_url=url)
        rig: Rig = await rig_factory(recovery={"agent": "anthropic", "mode": "push"}, llm=llm)
        patch = rig.patch(lambda checkout: (checkout / "app.sh").write_text(FIXED))
        fake.reset(lambda body: {"fixed": True, "patch": patch, "explanation": "add must add"})
        pipeline = await rig.pipeline()

        assert await rig.run(pipeline.id) is PipelineStatus.SUCCESS

    [request] = fake.requests
    assert request.path == "/v1/messages" and request.body["tool_choice"]["name"] == "debug_verdict"
    assert "FAILED: add 1 2 gave -1, expected 3" in user_prompt(request.body)
    async with rig.db.session() as session:
        [round_] = (await session.scalars(select(RecoveryRound))).all()
    assert (round_.result, round_.agent, round_.input_tokens, round_.output_tokens) == ("pushed", "anthropic", 10, 20)
    assert git(rig.repo, "rev-parse", BRANCH) == round_.fix_sha


async def test_the_runtimes_agentapi_debugger_without_a_command_fails_the_step_naming_the_setting(
    rig_factory: Callable[..., Any],
) -> None:
    rig: Rig = await rig_factory(recovery={"agent": "agentapi", "mode": "push"})
    async with rig.db.transaction() as session:
        project = await session.get(Project, rig.project.id)
        assert project is not None
        project.settings = {**(project.settings or {}), "agent": {"type": "custom"}}
    pipeline = await rig.pipeline()

    assert await rig.run(pipeline.id) is PipelineStatus.FAILED

    _, steps, _ = await load(rig.db, pipeline.id)
    assert "recovery could not run: project" in (steps["test"].error_message or "")
    assert "a custom agent needs a command (project update --set agent.command=…)" in (
        steps["test"].error_message or ""
    )
    async with rig.db.session() as session:
        assert (await session.scalars(select(RecoveryRound))).all() == [], "no round starts"
