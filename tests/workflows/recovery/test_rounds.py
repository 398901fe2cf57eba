"""Recovery end to end over real repositories, the sandbox, the real OpenAI SDK against a fake model server and the
fake GitHub: a fix that passes its trial is pushed (or suggested) and the pipeline ends `success`; no fix after the
rounds, or past a budget, ends `failed` with an issue listing every round; a patch that deletes the test is refused."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from taskmaster.costs import service as costs
from taskmaster.db.models import AiCall, Pipeline, Project, RecoveryRound
from taskmaster.pipelines import queries
from taskmaster.pipelines.recovery import RecoveryNeeded
from taskmaster.pipelines.report import render_comment
from taskmaster.pipelines.reporting import pipeline_report
from taskmaster.pipelines.schemas import PipelineOut
from taskmaster.pipelines.service import PipelineRequest, request_pipeline, supersede_older
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.workflows.recovery import request_recovery
from taskmaster.workflows.recovery.service import fix_validation
from tests.agents.llm.fakes import FakeLlm, user_prompt
from tests.forges.fakes.github import FakeGitHub
from tests.support.git import git
from tests.support.pipelines import load
from tests.workflows.recovery.conftest import BRANCH, BROKEN, FIXED, PR, WRONG, Rig


def _write(name: str, text: str) -> Callable[[Path], None]:
    def change(checkout: Path) -> None:
        (checkout / name).write_text(text)

    return change


def _answer(patch: str | None, explanation: str = "add subtracted; it must add") -> dict[str, Any]:
    return {"fixed": patch is not None, "patch": patch or "", "explanation": explanation}


async def _rounds(rig: Rig, pipeline_id: uuid.UUID) -> list[RecoveryRound]:
    async with rig.db.session() as session:
        rows = await session.scalars(
            select(RecoveryRound).where(RecoveryRound.pipeline_id == pipeline_id).order_by(RecoveryRound.round)
        )
        return list(rows)


async def test_a_fix_that_passes_its_trial_is_pushed_and_the_pipeline_succeeds(
    rig_factory: Callable[..., Any], model: tuple[str, FakeLlm], github: tuple[str, FakeGitHub]
) -> None:
    url, fake_github = github
    rig: Rig = await rig_factory(recovery={"agent": "openai", "mode": "push"}, github=url)
    patch = rig.patch(_write("app.sh", FIXED))
    model[1].reset(lambda body: _answer(patch))
    pipeline = await rig.pipeline()

    assert await rig.run(pipeline.id) is PipelineStatus.SUCCESS

    # What the model was asked: the failing command, its log, the pull request's diff, the step.
    prompt = user_prompt(model[1].requests[0].body)
    assert "sh tests/test_add.sh" in prompt and "FAILED: add 1 2 gave -1, expected 3" in prompt
    assert "-add() { echo $(($1 + $2)); }" in prompt and "Debug round 1 of at most 2" in prompt
    [round_] = await _rounds(rig, pipeline.id)
    assert (round_.result, round_.agent, round_.template_name, round_.template_version) == (
        "pushed", "openai", "recovery.debug", 1,
    )  # fmt: skip
    assert (round_.input_tokens, round_.output_tokens, round_.patch) == (10, 20, patch)
    # The fix commit is on the pull request's branch, with its trailer, on top of the commit under test.
    head = git(rig.repo, "rev-parse", BRANCH)
    assert head == round_.fix_sha and git(rig.repo, "rev-parse", f"{BRANCH}~1") == rig.head_sha
    assert f"Taskmaster-Fix: {pipeline.id}" in git(rig.repo, "log", "-1", "--format=%B", BRANCH)
    assert git(rig.repo, "show", f"{BRANCH}:app.sh") + "\n" == FIXED
    # The pipeline records the fix: the step `fixed`, its dependent passed in the trial, no failure step ran.
    done, steps, attempts = await load(rig.db, pipeline.id)
    assert {name: step.status for name, step in steps.items()} == {
        "build": "success", "test": "success", "package": "success", "notify": "skipped",
    }  # fmt: skip
    assert len(attempts["test"]) == 1 and attempts["package"] == []
    assert "fixed by" in (steps["test"].error_message or "") and done.failure_reason is None
    # The trial ran the failed step, its dependents and their needs at the fix commit, never shown on the forge.
    trial, trial_steps, _ = await load(rig.db, round_.trial_pipeline_id)  # type: ignore[arg-type]
    assert (trial.status, trial.commit_sha, trial.trial_of, trial.pull_request_id) == (
        "success", round_.fix_sha, pipeline.id, None,
    )  # fmt: skip
    assert trial_steps["notify"].status == "skipped" and "not part of the trial" in (
        trial_steps["notify"].error_message or ""
    )
    async with rig.db.session() as session:
        assert await pipeline_report(session, trial.id) is None
        calls = (await session.scalars(select(AiCall))).all()
        assert [(c.purpose, c.provider, c.template_name, c.template_version, c.pipeline_id) for c in calls] == [
            ("recovery", "openai", "recovery.debug", 1, pipeline.id)
        ]
    assert fake_github.state.issues == []
    # The rounds are shown in the pull request's persistent comment and the pipeline's detail (REST, CLI).
    async with rig.db.session() as session:
        found = await pipeline_report(session, pipeline.id)
        detail = PipelineOut.of_detail(await queries.get_detail(session, pipeline.id))
    assert found is not None
    assert f"| `test` | 1 | openai | pushed | `{head[:12]}` | 30 |" in render_comment(found[1])
    assert [(r.step, r.round, r.result, r.fix_sha, r.template_version) for r in detail.recovery] == [
        ("test", 1, "pushed", head, 1)
    ]

    # The fix commit's own validation pipeline (as its webhook requests it) supersedes nothing of the pipeline that
    # pushed it, and never starts another recovery.
    async with rig.db.transaction() as session:
        fix = await fix_validation(session, pipeline.id)
        assert fix is not None and (fix.fix_sha, fix.branch, fix.pipeline_id) == (head, BRANCH, None)
        project = await session.get(Project, rig.project.id)
        assert project is not None
        requested = await request_pipeline(
            session,
            PipelineRequest(project_id=project.id, commit_sha=head, branch_name=BRANCH,
                            pull_request_id=done.pull_request_id, pull_request_number=PR, trigger_event="synchronize"),
        )  # fmt: skip
        validating = requested.pipeline.id
    assert await rig.run(validating) is PipelineStatus.SUCCESS
    async with rig.db.session() as session:
        fix = await fix_validation(session, pipeline.id)
        assert fix is not None and fix.pipeline_id == validating
        needed = RecoveryNeeded(validating, uuid.uuid4(), "test", 1, 1, "exit code 1", "")
        assert await request_recovery(session, needed) is False
    assert [(r.kind, r.pipeline_id) for r in await rig.runs()] == [("recovery", pipeline.id)]


async def test_a_live_pipeline_is_not_superseded_by_the_fix_it_pushed(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory(recovery={"agent": "openai"})
    pipeline = await rig.pipeline()
    other = await rig.pipeline()
    fix_sha = "f" * 40
    async with rig.db.transaction() as session:
        session.add(RecoveryRound(pipeline_id=pipeline.id, step_name="test", round=1, agent="openai",
                                  input_tokens=0, output_tokens=0, result="pushed", fix_sha=fix_sha))  # fmt: skip
        newer = Pipeline(project_id=rig.project.id, pull_request_id=pipeline.pull_request_id, commit_sha=fix_sha,
                         pipeline_type="validation", status="pending")  # fmt: skip
        session.add(newer)
        await session.flush()
        superseded = await supersede_older(session, newer)
    assert [p.id for p in superseded] == [other.id]


async def test_a_fix_the_model_cannot_find_fails_after_two_rounds_with_an_issue_listing_both(
    rig_factory: Callable[..., Any], model: tuple[str, FakeLlm], github: tuple[str, FakeGitHub]
) -> None:
    url, fake_github = github
    rig: Rig = await rig_factory(recovery={"agent": "openai", "mode": "push"}, github=url)
    wrong = rig.patch(_write("app.sh", WRONG))
    answers = iter([_answer(wrong, "multiply instead"), _answer(None, "I cannot tell what add should do")])
    model[1].reset(lambda body: next(answers))
    pipeline = await rig.pipeline()

    assert await rig.run(pipeline.id) is PipelineStatus.FAILED

    rounds = await _rounds(rig, pipeline.id)
    assert [(r.round, r.result) for r in rounds] == [(1, "red"), (2, "no_fix")]
    assert "FAILED: add 1 2 gave 2" in (rounds[0].detail or "")  # the trial's own failure
    # Round 2 was told about round 1's patch and how it ended.
    second = user_prompt(model[1].requests[1].body)
    assert "Round 1: red" in second and wrong.strip().splitlines()[-1] in second
    [issue] = fake_github.state.issues
    assert issue["repo"] == "octo/app" and "step 'test'" in issue["title"]
    body = issue["body"]
    for expected in ("Round 1: red", "Round 2: no_fix", "multiply instead", "FAILED: add 1 2 gave -1", wrong.strip()):
        assert expected in body
    done, steps, _ = await load(rig.db, pipeline.id)
    assert done.review_issue_url and done.review_issue_url.endswith("/octo/app/issues/1")
    assert (steps["test"].status, steps["package"].status) == ("failed", "skipped")
    assert "no fix passed its trial in 2 round(s)" in (steps["test"].error_message or "")
    assert git(rig.repo, "rev-parse", BRANCH) == rig.head_sha, "nothing was pushed"
    async with rig.db.session() as session:
        found = await pipeline_report(session, pipeline.id)
    assert found is not None
    comment = render_comment(found[1])
    assert "| `test` | 2 | openai | no_fix |" in comment and done.review_issue_url in comment


async def test_a_patch_that_deletes_the_failing_test_is_refused(
    rig_factory: Callable[..., Any], model: tuple[str, FakeLlm]
) -> None:
    rig: Rig = await rig_factory(recovery={"agent": "openai", "mode": "push", "max_rounds": 1})
    deletion = rig.patch(lambda checkout: (checkout / "tests" / "test_add.sh").unlink())
    model[1].reset(lambda body: _answer(deletion, "the test is wrong"))
    pipeline = await rig.pipeline()

    assert await rig.run(pipeline.id) is PipelineStatus.FAILED

    [round_] = await _rounds(rig, pipeline.id)
    assert round_.result == "refused" and "tests/test_add.sh: the patch deletes a test file" in (round_.detail or "")
    assert round_.trial_pipeline_id is None and round_.fix_sha is None
    async with rig.db.session() as session:
        trials = (await session.scalars(select(Pipeline).where(Pipeline.trial_of.is_not(None)))).all()
    assert trials == [] and git(rig.repo, "rev-parse", BRANCH) == rig.head_sha


async def test_a_spent_pipeline_budget_stops_the_rounds_and_opens_the_issue(
    rig_factory: Callable[..., Any], model: tuple[str, FakeLlm], github: tuple[str, FakeGitHub]
) -> None:
    url, fake_github = github
    # 30 tokens at $1000 per million: $0.03 a round, over a budget of $0.02 after the first.
    rig: Rig = await rig_factory(
        recovery={"agent": "openai", "budget_usd": 0.02, "max_rounds": 3}, github=url, price=1000.0
    )
    model[1].reset(lambda body: _answer(None, "no idea"))
    pipeline = await rig.pipeline()

    assert await rig.run(pipeline.id) is PipelineStatus.FAILED

    assert [(r.round, r.result, r.cost_usd) for r in await _rounds(rig, pipeline.id)] == [(1, "no_fix", 0.03)]
    [issue] = fake_github.state.issues
    assert "the pipeline's recovery budget is spent ($0.0300 of $0.02)" in issue["body"]


async def test_a_spent_daily_project_budget_runs_no_round(
    rig_factory: Callable[..., Any], model: tuple[str, FakeLlm]
) -> None:
    rig: Rig = await rig_factory(recovery={"agent": "openai", "daily_budget_usd": 5.0})
    async with rig.db.transaction() as session:
        await costs.record_call(
            session, costs.CallRecord(project_id=rig.project.id, purpose="review", provider="openai", cost_usd=5.5),
            prices={},
        )  # fmt: skip
    pipeline = await rig.pipeline()

    assert await rig.run(pipeline.id) is PipelineStatus.FAILED

    assert await _rounds(rig, pipeline.id) == [] and model[1].requests == []
    _, steps, _ = await load(rig.db, pipeline.id)
    assert "the project's daily recovery budget is spent ($5.5000 of $5.00 today)" in (
        steps["test"].error_message or ""
    )
    assert datetime.now(UTC).hour >= 0  # the day is the UTC day


async def test_suggest_mode_comments_the_fix_on_the_pull_request_and_pushes_nothing(
    rig_factory: Callable[..., Any], model: tuple[str, FakeLlm], github: tuple[str, FakeGitHub]
) -> None:
    url, fake_github = github
    rig: Rig = await rig_factory(recovery={"agent": "openai", "mode": "suggest"}, github=url)
    patch = rig.patch(_write("app.sh", FIXED))
    model[1].reset(lambda body: _answer(patch))
    pipeline = await rig.pipeline()

    assert await rig.run(pipeline.id) is PipelineStatus.SUCCESS

    [round_] = await _rounds(rig, pipeline.id)
    assert (round_.result, round_.detail) == ("suggested", f"suggested on pull request #{PR}")
    [comment] = fake_github.comments_on("octo/app", PR)
    assert "a fix for step `test`" in comment["body"] and "+add() { echo $(($1 + $2)); }" in comment["body"]
    assert git(rig.repo, "rev-parse", BRANCH) == rig.head_sha, "suggest mode pushes nothing"
    async with rig.db.session() as session:
        assert await fix_validation(session, pipeline.id) is None
    assert BROKEN != FIXED


async def test_a_patch_that_does_not_apply_is_refused_with_gits_words(
    rig_factory: Callable[..., Any], model: tuple[str, FakeLlm]
) -> None:
    rig: Rig = await rig_factory(recovery={"agent": "openai", "max_rounds": 1})
    stale = "--- a/app.sh\n+++ b/app.sh\n@@ -1 +1 @@\n-add() { echo nothing; }\n+add() { echo $(($1 + $2)); }\n"
    model[1].reset(lambda body: _answer(stale))
    pipeline = await rig.pipeline()

    assert await rig.run(pipeline.id) is PipelineStatus.FAILED

    [round_] = await _rounds(rig, pipeline.id)
    assert round_.result == "refused" and "the patch does not apply at the commit under test" in (round_.detail or "")
    assert "patch failed: app.sh:1" in (round_.detail or "") and round_.fix_sha is None
