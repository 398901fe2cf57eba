"""Recovery end to end on a local-forge project: a worker validates a local pull request whose test step fails,
the project's coding agent (a scripted terminal agent, `custom`, in a real sandboxed AgentAPI session) debugs it in
its own checkout, and the fix is pushed to the pull request's branch, or after two red rounds an issue is opened."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select

from taskmaster.db import migrate
from taskmaster.db.models import Pipeline, PipelineStep, Project, RecoveryRound, WorkflowRun
from taskmaster.forges.local import service
from taskmaster.forges.local.forge import LocalForge
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.runtime import Runtime
from taskmaster.worker.runtime import WorkerRuntime
from tests.cli.conftest import TASKMASTER, clean_env
from tests.support import install_agent
from tests.support.git import commit, git
from tests.support.pipelines import Harness
from tests.workflows.recovery.conftest import BROKEN, FIXED, TEST

SCRIPT = Path(__file__).parent / "debug_agent.py"
DEFINITION = """\
steps:
  test: {run: "sh tests/test_add.sh", retries: 1}
  review: {uses: ai_review, needs: [test]}
"""

pytestmark = pytest.mark.slow


async def _project(harness_factory: Callable[..., Awaitable[Harness]], reachable_dir: Path, mode: str) -> Harness:
    """A local-path project over a repository whose `feature` branch breaks `add`; its agent is the debug script."""
    agent = install_agent(reachable_dir / "debug-cli", "debug-agent", SCRIPT)
    settings = {
        "agent": {"type": "custom", "command": f"{agent} {mode}"},
        "recovery": {"agent": "agentapi", "mode": "push", "max_rounds": 2},
        "review": {"reviewer": "offline"},
    }
    harness = await harness_factory(DEFINITION, agentapi_config={"stability_window": 0.4})
    async with harness.db.transaction() as session:
        project = await session.get(Project, harness.project.id)
        assert project is not None
        project.settings = settings
    harness.project = project
    commit(harness.repo, "tests/test_add.sh", TEST)
    commit(harness.repo, "app.sh", FIXED, "add works")
    git(harness.repo, "checkout", "-q", "-b", "feature")
    commit(harness.repo, "app.sh", BROKEN, "refactor add (it now subtracts)")
    git(harness.repo, "checkout", "-q", "main")
    return harness


async def _eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 120) -> Any:
    try:
        async with asyncio.timeout(timeout):
            while not (found := await check()):
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
    return found


async def _pipelines(harness: Harness) -> list[Pipeline]:
    async with harness.db.session() as session:
        query = select(Pipeline).where(Pipeline.trial_of.is_(None)).order_by(Pipeline.created_at)
        return list(await session.scalars(query.where(Pipeline.project_id == harness.project.id)))


async def _validate(harness: Harness, done: Callable[[list[Pipeline]], bool]) -> tuple[list[Pipeline], int]:
    """Open pull request `feature` -> main through the runtime's local forge and run a worker until `done`."""
    runtime = Runtime(harness.settings, harness.db)
    worker = WorkerRuntime(runtime, mode="in-process")
    await worker.start()
    try:
        forge = runtime.forges.for_project(harness.project)
        assert isinstance(forge, LocalForge)
        opened = await forge.create_pull_request(harness.project.name, head="feature", base="main", title="t", body="")

        async def finished() -> list[Pipeline] | None:
            found = await _pipelines(harness)
            return found if done(found) else None

        try:
            return await _eventually(finished, "the pull request's pipelines"), opened.number
        except AssertionError:
            raise AssertionError(await _describe(harness)) from None
    finally:
        await worker.stop()
        await runtime.aclose()


async def _describe(harness: Harness) -> str:
    """What the pipelines did (for a test that timed out)."""
    lines = []
    async with harness.db.session() as session:
        for pipeline in await _pipelines(harness):
            lines.append(f"{pipeline.id} {pipeline.status} {pipeline.commit_sha} {pipeline.error_message}")
            steps = await session.scalars(select(PipelineStep).where(PipelineStep.pipeline_id == pipeline.id))
            lines += [f"  {s.step_name} {s.status} {s.failure_reason} {s.error_message}" for s in steps]
        rounds = await session.scalars(select(RecoveryRound))
        lines += [f"round {r.round} {r.result} {r.detail}" for r in rounds]
    return "\n".join(lines)


async def _cli(harness: Harness, *args: str) -> Any:
    """`taskmaster ARGS` as a person runs it, on the test's database; its JSON output."""
    if harness.settings.embedded:
        # The test's schema is the models' (no Alembic revision): marked at head, as the command migrates SQLite.
        async with harness.db.engine.begin() as connection:
            await connection.run_sync(migrate._with_connection, command.stamp, "head")
    env = clean_env(TASKMASTER_HOME=str(harness.settings.state_dir))
    if harness.settings.database.url:
        env["DATABASE_URL"] = harness.settings.database.url
    done = subprocess.run([TASKMASTER, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _ended(*statuses: PipelineStatus) -> Callable[[list[Pipeline]], bool]:
    return lambda found: [p.status for p in found] == [s.value for s in statuses]


async def test_the_agent_fixes_its_checkout_and_the_fix_commit_on_the_pr_branch_is_validated_without_recovery(
    harness_factory: Callable[..., Awaitable[Harness]], reachable_dir: Path
) -> None:
    harness = await _project(harness_factory, reachable_dir, "fix")
    head = git(harness.repo, "rev-parse", "feature")

    (first, second), number = await _validate(harness, _ended(PipelineStatus.SUCCESS, PipelineStatus.SUCCESS))

    fix = git(harness.repo, "rev-parse", "feature")
    assert first.commit_sha == head and second.commit_sha == fix != head
    assert git(harness.repo, "rev-parse", f"{fix}^") == head, "the fix is one commit on the pull request's head"
    assert git(harness.repo, "show", f"{fix}:app.sh") == FIXED.strip()
    assert f"Taskmaster-Fix: {first.id}" in git(harness.repo, "log", "-1", "--format=%B", fix)
    async with harness.db.session() as session:
        rounds = (await session.scalars(select(RecoveryRound))).all()
        runs = (await session.scalars(select(WorkflowRun).where(WorkflowRun.kind == "recovery"))).all()
        _, pull = await service.get_pull_request(session, harness.project.id, number)
    [round_] = rounds
    assert (round_.pipeline_id, round_.result, round_.agent, round_.fix_sha) == (
        first.id, "pushed", "agentapi:custom", fix,
    )  # fmt: skip
    assert "-add() { echo $(($1 - $2)); }" in (round_.patch or "")
    assert "Debugged: add now adds" in (round_.explanation or "")
    assert [run.pipeline_id for run in runs] == [first.id], "the fix commit's own pipeline starts no recovery"
    assert (pull.head_sha, first.pull_request_id, second.pull_request_id) == (fix, pull.id, pull.id)


async def test_an_agent_that_cannot_fix_it_fails_the_pipeline_after_two_rounds_with_a_local_issue(
    harness_factory: Callable[..., Awaitable[Harness]], reachable_dir: Path
) -> None:
    harness = await _project(harness_factory, reachable_dir, "wrong")
    head = git(harness.repo, "rev-parse", "feature")

    (pipeline,), _ = await _validate(harness, _ended(PipelineStatus.FAILED))

    assert git(harness.repo, "rev-parse", "feature") == head, "nothing is pushed"
    async with harness.db.session() as session:
        rounds = (await session.scalars(select(RecoveryRound).order_by(RecoveryRound.round))).all()
        _, issues = await service.list_issues(session, harness.project.name)
    assert [(r.round, r.result, r.agent) for r in rounds] == [
        (1, "red", "agentapi:custom"),
        (2, "red", "agentapi:custom"),
    ]
    assert all("+add() { echo $(($1 * $2)); }" in (r.patch or "") for r in rounds)
    [issue] = issues
    listed = await _cli(harness, "issue", "list", "-p", harness.project.name, "--json")
    shown = await _cli(harness, "issue", "show", "-p", harness.project.name, str(issue.number), "--json")
    assert [(i["number"], i["title"]) for i in listed] == [(issue.number, issue.title)] and shown["body"] == issue.body
    assert pipeline.review_issue_url is not None and pipeline.review_issue_url.endswith(f"/issues/{issue.number}")
    assert f"step 'test' of pipeline {pipeline.id} failed" in issue.title
    assert "### Round 1: red (agentapi:custom" in issue.body and "### Round 2: red (agentapi:custom" in issue.body
    assert "FAILED: add 1 2 gave 2, expected 3" in issue.body and "no fix passed its trial in 2 round(s)" in issue.body
