"""The `agentapi` reviewer for real: the runtime builds the project's coding agent, a scripted terminal reviewer runs
in a sandboxed AgentAPI session over a checkout of the commit, and the `ai_review` step of a local-forge pull
request's pipeline ends with its verdict, anchored, stored and shown on the local forge; an agent that keeps
writing an invalid verdict gets one repair round, then the step ends in error saying why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from taskmaster.db.models import AiCall, Pipeline, PipelineStep, Project, ReviewFinding, ReviewReport
from taskmaster.forges.local import service
from taskmaster.forges.local.schemas import PullRequestCreate, PullRequestDetail
from taskmaster.pipelines.logs import log_tail
from taskmaster.runtime import Runtime
from taskmaster.worker.forges import ForgeUpdates
from tests.support import install_agent
from tests.support.git import commit, git

AGENTS = Path(__file__).parents[2] / "agents" / "agentapi_coding"
DEFINITION = "steps:\n  review: {uses: ai_review}\n"
APP = "def calculate(expression):\n    value = eval(expression)\n    return value\n"
BODY = "Adds calculate(), which evaluates what the user typed."


def install_reviewer(root: Path) -> str:
    """The scripted reviewer and the agent whose terminal it reuses, where the sandbox user can read them."""
    reviewer = Path(__file__).parent / "review_agent.py"
    return install_agent(root / "reviewer-cli", "review-agent", reviewer, AGENTS / "scripted_agent.py")


async def run_agentapi_review(harness_factory: Callable[..., Any], root: Path, mode: str) -> tuple[Any, Any, Any]:
    """A local-forge pull request adding `APP`, reviewed by the scripted reviewer in `mode`; (harness, pipeline
    id, pull request detail) once its pipeline ended and the forge was told."""
    command = install_reviewer(root)
    harness = await harness_factory(DEFINITION, agentapi_config={"stability_window": 0.4})
    async with harness.db.transaction() as session:
        project = await session.get(Project, harness.project.id)
        assert project is not None
        project.settings = {
            "review": {"reviewer": "agentapi"},
            "agent": {"type": "custom", "command": f"{command} {mode}"},
        }
    commit(harness.repo, "README.md", "Calculator service\n")
    git(harness.repo, "checkout", "-q", "-b", "feature")
    commit(harness.repo, "app.py", APP)
    git(harness.repo, "checkout", "-q", "main")
    async with harness.db.transaction() as session:
        pull = await service.open_pull_request(
            session, harness.project.id, PullRequestCreate(head="feature", title="Add a calculator", body=BODY),
            author="alice",
        )  # fmt: skip
        number = pull.number
    pipeline = await harness.create("feature")
    async with harness.db.transaction() as session:
        row = await session.get(Pipeline, pipeline.id)
        assert row is not None
        row.pull_request_id = pull.id

    runtime = Runtime(harness.settings, harness.db)
    runtime.review.mirror = harness.mirror  # the mirror the sandbox user can read (its objects back the checkout)
    updates = ForgeUpdates(harness.db, runtime.forges)
    try:
        await harness.engine(on_change=updates, builtins=runtime.builtins).run(pipeline.id)
        await updates.drain()
    finally:
        await runtime.aclose()
    async with harness.db.transaction() as session:
        project, row = await service.get_pull_request(session, harness.project.id, number)
        shown: PullRequestDetail = await service.detail(session, project, row)
    return harness, pipeline.id, shown


async def test_a_scripted_terminal_reviewer_through_agentapi_gives_the_review_step_its_verdict(
    harness_factory: Callable[..., Any], reachable_dir: Path
) -> None:
    harness, pipeline_id, shown = await run_agentapi_review(harness_factory, reachable_dir, "valid")

    async with harness.db.session() as session:
        pipeline = await session.get(Pipeline, pipeline_id)
        step = await session.scalar(select(PipelineStep).where(PipelineStep.pipeline_id == pipeline_id))
        report = await session.scalar(select(ReviewReport).where(ReviewReport.pipeline_id == pipeline_id))
        findings = (await session.scalars(select(ReviewFinding))).all()
        (call,) = (await session.scalars(select(AiCall))).all()
        log = await log_tail(session, step.id, chars=100_000) if step is not None else ""
    assert pipeline is not None and step is not None and report is not None
    # A blocker fails the default policy: the step fails for the code, with the agent's verdict.
    assert (pipeline.status, step.status, step.failure_reason) == ("failed", "failed", "code")
    assert step.error_message == "exit code 1 (AI review failed: 1 finding over the policy)"
    assert "agentapi:custom wrote its verdict (round 1)" in log
    assert report.reviewer == "agentapi:custom" and report.passed is False
    # It read the tree beyond the diff (README.md at the head) and the pull request's body from its prompt.
    assert report.report["summary"] == f"Read README (Calculator service); PR body: {BODY}"
    (finding,) = findings
    assert (finding.path, finding.start_line, finding.end_line, finding.severity, finding.posted) == (
        "app.py", 2, 2, "blocker", True,
    )  # fmt: skip
    assert (call.provider, call.purpose, call.requests, call.pipeline_id) == (
        "agentapi:custom", "review", 1, pipeline_id,
    )  # fmt: skip

    # On the local forge: the check run's annotation on the line, the inline review, the marked comment.
    (check,) = shown.check_runs
    assert check.conclusion == "failure"
    assert [(a["path"], a["start_line"], a["title"]) for a in check.annotations] == [("app.py", 2, "blocker: security")]
    (posted,) = shown.reviews
    assert [(c["path"], c["line"]) for c in posted.comments] == [("app.py", 2)]
    assert "eval( runs text from the request" in posted.comments[0]["body"]
    (comment,) = shown.comments
    assert "AI review failed (agentapi:custom)" in comment.body and "`app.py:2`" in comment.body


async def test_a_reviewer_that_writes_an_invalid_verdict_gets_one_repair_round_then_the_step_errs(
    harness_factory: Callable[..., Any], reachable_dir: Path
) -> None:
    harness, pipeline_id, shown = await run_agentapi_review(harness_factory, reachable_dir, "invalid")

    async with harness.db.session() as session:
        step = await session.scalar(select(PipelineStep).where(PipelineStep.pipeline_id == pipeline_id))
        assert step is not None
        log = await log_tail(session, step.id, chars=100_000)
        reports = (await session.scalars(select(ReviewReport))).all()
        (call,) = (await session.scalars(select(AiCall))).all()
    assert step.status == "error"
    assert step.error_message is not None and step.error_message.startswith(
        "the reviewing agent agentapi:custom gave no valid verdict after one repair round: "
    )
    assert "findings.0.start_line: Field required" in step.error_message
    assert "invalid verdict in round 1" in log and "invalid verdict in round 2" in log
    assert reports == [] and call.requests == 2
    assert shown.reviews == []


async def test_a_repair_round_is_a_whole_request_that_a_fresh_agent_session_can_answer(
    harness_factory: Callable[..., Any], reachable_dir: Path
) -> None:
    harness, pipeline_id, _ = await run_agentapi_review(harness_factory, reachable_dir, "repair")

    async with harness.db.session() as session:
        step = await session.scalar(select(PipelineStep).where(PipelineStep.pipeline_id == pipeline_id))
        assert step is not None
        log = await log_tail(session, step.id, chars=100_000)
        (finding,) = (await session.scalars(select(ReviewFinding))).all()
    assert "invalid verdict in round 1" in log and "agentapi:custom wrote its verdict (round 2)" in log
    assert (step.status, finding.path, finding.start_line) == ("failed", "app.py", 2)
