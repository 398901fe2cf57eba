"""The coding-agent reviewer (a scripted `CodingAgent` that really writes its verdict file in its checkout, with one
repair round), the `/taskmaster review` workflow on a PR's head, and token-mode publishing (inline review comments
through `create_review`, the PR's review comment on the fake GitHub)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from taskmaster.agents.base import AgentKind, AgentResult, CodingJob, StartedCallback
from taskmaster.config import Settings
from taskmaster.db.models import AiCall, Project, PullRequest, ReviewReport, Task, WorkflowRun
from taskmaster.db.session import Database
from taskmaster.forges.base import ForgeCapabilities, ReviewComment
from taskmaster.forges.github.client import GitHubForge
from taskmaster.workflows.base import RunInput
from taskmaster.workflows.review import ReviewWorkflow
from taskmaster.workflows.review.agent import VERDICT_FILE
from taskmaster.workflows.review.publish import COMMENT_MARKER
from taskmaster.workflows.review.service import review
from tests.forges.fakes.github import PERSONAL_TOKEN, FakeGitHub, serve_github
from tests.workflows.review.conftest import Log, make_pr, push

HEAD = "import os\n\ndef load(path):\n    return open(path).read()\n"


class ScriptedAgent:
    """A coding agent whose each round writes the next scripted text to the verdict file of its checkout, and
    remembers what it was asked and what it could read there."""

    kind: AgentKind = "agentapi"
    label = "agentapi:scripted"

    def __init__(self, answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.jobs: list[CodingJob] = []
        self.seen: list[str] = []
        self.closed = 0

    async def run(self, job: CodingJob, *, on_started: StartedCallback | None = None) -> AgentResult:
        self.jobs.append(job)
        self.seen.append((job.checkout / "app.py").read_text())  # it reads the tree beyond the diff
        target = job.checkout / VERDICT_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.answers.pop(0))
        return AgentResult(ok=True, summary="reviewed", input_tokens=100, output_tokens=50)

    async def aclose(self) -> None:
        self.closed += 1


def verdict_json(line: int = 4, quote: str = "return open(path).read()") -> str:
    return json.dumps({"summary": "The file is never closed.", "meets_acceptance": False, "findings": [
        {"file": "app.py", "start_line": line, "end_line": line, "severity": "major", "category": "bug",
         "message": "the file is never closed", "replacement": "    with open(path) as f:\n        return f.read()",
         "confidence": 0.85, "quote": quote}]})  # fmt: skip


async def test_the_agent_reviewer_writes_a_verdict_file_and_an_invalid_one_gets_one_repair_round(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    task_details = "Load files.\n\nAcceptance criteria:\n- files are closed\n- errors name the path\n"
    setup = await make_pr(db, settings, tmp_path, {"app.py": "import os\n"}, {"app.py": HEAD},
                          project_settings={"review": {"reviewer": "agentapi"}})  # fmt: skip
    async with db.transaction() as session:
        task = Task(project_id=setup.project.id, number=1, title="Load", details=task_details)
        session.add(task)
        await session.flush()
        pr = await session.get(PullRequest, setup.pr.id)
        assert pr is not None
        pr.task_id = task.id
    agent = ScriptedAgent(['{"summary": "x", "findings": [{"file": "app.py"}]}', verdict_json()])
    made: list[Project] = []

    def make_agent(project: Project) -> ScriptedAgent:
        made.append(project)
        return agent

    setup.services.make_agent = make_agent
    log = Log()
    result = await review(setup.services, setup.target(), log)

    assert result.status == "failed" and result.report is not None  # a major at 0.85 fails the default policy
    (finding,) = result.report.findings
    assert (finding.file, finding.start_line, finding.replacement is not None) == ("app.py", 4, True)
    assert result.report.meets_acceptance is False and result.report.reviewer == "agentapi:scripted"
    assert len(agent.jobs) == 2 and agent.closed == 1 and made[0].id == setup.project.id
    first, repair = agent.jobs
    assert (
        VERDICT_FILE in first.prompt
        and "- files are closed" in first.prompt
        and "Title: Add the feature" in first.prompt
    )
    assert first.acceptance == ("files are closed", "errors name the path")
    assert "findings.0.start_line: Field required" in repair.prompt
    assert agent.seen == [HEAD, HEAD]  # the checkout is the head
    assert not first.checkout.exists()  # removed after the review
    assert "invalid verdict in round 1" in log.text
    async with db.session() as session:
        (call,) = (await session.scalars(select(AiCall))).all()
    assert (call.provider, call.input_tokens, call.output_tokens, call.requests) == ("agentapi:scripted", 200, 100, 2)

    stubborn = ScriptedAgent(["not json", "still not json"])
    setup.services.make_agent = lambda project: stubborn
    failed = await review(setup.services, setup.target(), Log())
    assert failed.status == "error"
    assert failed.message.startswith("the reviewing agent agentapi:scripted gave no valid verdict after one repair")
    assert len(stubborn.jobs) == 2


class InlineGitHub(GitHubForge):
    """The GitHub client with inline review comments, as the client that posts them will be; `create_review`
    records what it was given (the request itself belongs to that client's own tests)."""

    reviews: list[dict[str, Any]] = []

    @property
    def capabilities(self) -> ForgeCapabilities:
        return ForgeCapabilities(check_runs=False, annotations=False, inline_review_comments=True)

    async def create_review(
        self, repo: str, number: int, *, commit_sha: str, body: str, comments: Sequence[ReviewComment]
    ) -> str:
        InlineGitHub.reviews.append(
            {"repo": repo, "number": number, "sha": commit_sha, "body": body, "comments": list(comments)}
        )
        return str(len(InlineGitHub.reviews))


@pytest.fixture
def github() -> Iterator[tuple[str, FakeGitHub]]:
    with serve_github() as server:
        yield server


async def test_taskmaster_review_reruns_on_the_prs_head_posts_inline_comments_once_and_edits_one_comment(
    db: Database, settings: Settings, tmp_path: Path, github: tuple[str, FakeGitHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, fake = github
    setup = await make_pr(db, settings, tmp_path, {"app.py": "x = 1\n"}, {"app.py": "x = 1\n# TODO: later\n"},
                          forge="github", owner="octo", repo_name="app")  # fmt: skip
    async with db.transaction() as session:
        project = await session.get(Project, setup.project.id)
        assert project is not None
        project.forge_token = setup.services.credentials.box.encrypt(PERSONAL_TOKEN)
        project.settings = {"forge_api_url": url}
    InlineGitHub.reviews = []
    monkeypatch.setattr("taskmaster.projects.forges.GitHubForge", InlineGitHub)
    workflow = ReviewWorkflow(setup.services)

    async def run_input(sha: str) -> RunInput:
        # a stale sha in the request: the run reviews the PR's head as it is now
        async with db.transaction() as session:
            row = WorkflowRun(project_id=setup.project.id, kind="review", trigger_key=f"review:{uuid.uuid4()}",
                              pull_request_id=setup.pr.id, commit_sha=sha)  # fmt: skip
            session.add(row)
            await session.flush()
            run_id = row.id
        return RunInput(run_id=run_id, kind="review", project_id=setup.project.id, attempt=1,
                        pull_request_id=setup.pr.id, commit_sha=sha)  # fmt: skip

    first = await workflow.run(db, await run_input(setup.base))
    assert first.status == "succeeded" and first.result["decision"] == "passed"
    assert first.result["commit_sha"] == setup.head
    (posted,) = InlineGitHub.reviews
    (comment,) = posted["comments"]
    assert (posted["repo"], posted["number"], posted["sha"]) == ("octo/app", 7, setup.head)
    assert (comment.path, comment.line, comment.start_line) == ("app.py", 2, None)
    assert "**nit** (todo)" in comment.body
    (pr_comment,) = fake.comments_on("octo/app", 7)
    assert pr_comment["body"].startswith(f"<!-- taskmaster:{COMMENT_MARKER} -->")
    assert "1 findings on changed lines (1 new" in pr_comment["body"]

    newer = push(setup.repo, {"b.py": "print('hi')\n"})
    await setup.moved_to(newer)
    second = await workflow.run(db, await run_input(setup.base))
    assert second.result["commit_sha"] == newer
    assert len(InlineGitHub.reviews) == 2
    latest = InlineGitHub.reviews[-1]["comments"]
    assert [(c.path, c.line) for c in latest] == [("b.py", 1)]  # the TODO is not posted again
    (edited,) = fake.comments_on("octo/app", 7)  # one comment, edited
    assert "(1 new, 1 reported on an earlier push)" in edited["body"]
    async with db.session() as session:
        reports = (await session.scalars(select(ReviewReport).order_by(ReviewReport.created_at))).all()
    assert [r.commit_sha for r in reports] == [first.result["commit_sha"], newer]
    assert all(r.pipeline_id is None and r.workflow_run_id is not None for r in reports)

    # The findings are fixed: the comment says the review now passes, instead of showing the old findings.
    clean = push(setup.repo, {"app.py": "x = 1\n", "b.py": "VALUE = 1\n"})
    await setup.moved_to(clean)
    third = await workflow.run(db, await run_input(setup.base))
    assert (third.result["commit_sha"], third.result["decision"]) == (clean, "passed")
    assert len(InlineGitHub.reviews) == 2  # nothing new to post inline
    (cleared,) = fake.comments_on("octo/app", 7)
    assert "✅ AI review passed" in cleared["body"] and f"No findings at {clean[:12]}" in cleared["body"]
    assert "TODO" not in cleared["body"] and "b.py" not in cleared["body"]


async def test_a_review_run_without_services_fails_saying_so(db: Database, settings: Settings) -> None:
    result = await ReviewWorkflow().run(
        db, RunInput(run_id=uuid.uuid4(), kind="review", project_id=uuid.uuid4(), attempt=1)
    )
    assert (result.status, result.error) == ("failed", "no reviewer is configured (project setting review.reviewer)")


def test_a_verdict_file_linked_outside_the_checkout_is_not_read(tmp_path: Path) -> None:
    from taskmaster.workflows.review.agent import read_verdict

    checkout, outside = tmp_path / "checkout", tmp_path / "outside"
    (outside / "d").mkdir(parents=True)
    (outside / "d" / "verdict.json").write_text(verdict_json())
    checkout.mkdir()
    (checkout / ".taskmaster-review").symlink_to(outside / "d")
    assert read_verdict(checkout, VERDICT_FILE) == (None, f"{VERDICT_FILE} leads outside the checkout")
    (checkout / ".taskmaster-review").unlink()
    (checkout / ".taskmaster-review").mkdir()
    (checkout / VERDICT_FILE).write_text(verdict_json())
    verdict, problem = read_verdict(checkout, VERDICT_FILE)
    assert verdict is not None and problem == "" and verdict.findings[0].start_line == 4
