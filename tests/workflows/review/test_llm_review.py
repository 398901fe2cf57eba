"""The review through real SDKs against fake model servers, inside real pipelines, reported to the fake GitHub as
the App: findings become annotations on the right lines, a finding on an unchanged line is only counted, an
invalid verdict gets one repair round then a clear error, a large PR is reviewed in parallel chunks, and findings
are not posted again on the next push."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from taskmaster.config.settings import GitHubSettings, LlmSettings
from taskmaster.db.models import AiCall, Pipeline, PipelineStep, Project, PullRequest, StepLog
from taskmaster.pipelines.builtins import DEFAULT_BUILTINS
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.forges import ForgeFactory
from taskmaster.secrets import SecretBox
from taskmaster.worker.forges import ForgeUpdates
from taskmaster.workflows.review.service import ReviewServices
from taskmaster.workflows.review.step import AiReviewStep
from tests.agents.llm.fakes import ANTHROPIC_KEY, OPENAI_KEY, FakeLlm, Text, serve, turns, user_prompt
from tests.forges.fakes.github import FakeGitHub, serve_github
from tests.support.git import git

DEFINITION = "steps:\n  review: {uses: ai_review, retries: 0}\n"
APP_ID = 4242
INSTALLATION = 77
BUGGY = (
    "def average(values):\n"                    # 1
    "    return sum(values) / len(values) + 1\n"  # 2: off by one (planted)
    "\n"                                        # 3
    "def first(values):\n"                      # 4
    "    return values[1]\n"                    # 5: wrong index (planted)
)  # fmt: skip


@pytest.fixture(scope="module")
def openai_server() -> Iterator[tuple[str, FakeLlm]]:
    with serve("openai") as server:
        yield server


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[tuple[str, FakeLlm]]:
    with serve("anthropic") as server:
        yield server


@pytest.fixture
def github() -> Iterator[tuple[str, FakeGitHub]]:
    with serve_github() as server:
        yield server


def verdict(*findings: dict[str, Any], summary: str = "Two bugs.") -> dict[str, Any]:
    return {"summary": summary, "findings": list(findings), "meets_acceptance": None}


def bug(file: str, line: int, quote: str, severity: str = "blocker", message: str = "wrong result") -> dict[str, Any]:
    return {"file": file, "start_line": line, "end_line": line, "severity": severity, "category": "bug",
            "message": message, "replacement": None, "confidence": 0.9, "quote": quote}  # fmt: skip


class World:
    """A harness project `octo/app` on GitHub as the App, a PR #7 from `feature`, and the review step's services."""

    def __init__(self, harness: Any, settings: Any, box: SecretBox, fake: FakeGitHub) -> None:
        self.harness, self.settings, self.box, self.fake = harness, settings, box, fake
        credentials = Credentials(box)
        self.services = ReviewServices(harness.db, settings, harness.mirror, credentials,
                                       ForgeFactory(settings, credentials))  # fmt: skip
        self.pr_id: Any = None

    async def push(self, files: dict[str, str]) -> Pipeline:
        repo = self.harness.repo
        if "feature" not in git(repo, "branch", "--list", "feature"):
            git(repo, "checkout", "-q", "-b", "feature")
        for name, text in files.items():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "push")
        pipeline = await self.harness.create(ref="feature")
        base = git(repo, "rev-parse", "main")
        async with self.harness.db.transaction() as session:
            if self.pr_id is None:
                pr = PullRequest(
                    project_id=self.harness.project.id,
                    number=7,
                    title="Average and first",
                    head_ref="feature",
                    head_sha=pipeline.commit_sha,
                    base_ref="main",
                    base_sha=base,
                )
                session.add(pr)
                await session.flush()
                self.pr_id = pr.id
            else:
                pr = await session.get(PullRequest, self.pr_id)
                pr.head_sha = pipeline.commit_sha
            row = await session.get(Pipeline, pipeline.id)
            assert row is not None
            row.pull_request_id = self.pr_id
        return pipeline

    async def run(self, pipeline: Pipeline) -> str:
        updates = ForgeUpdates(self.harness.db, ForgeFactory(self.settings, Credentials(self.box)))
        try:
            engine = self.harness.engine(
                builtins=DEFAULT_BUILTINS.with_steps(AiReviewStep(self.services)), on_change=updates
            )
            status = await engine.run(pipeline.id)
            await updates.drain()
        finally:
            await updates.aclose()
        return str(status)

    async def step(self, pipeline: Pipeline) -> tuple[PipelineStep, str]:
        async with self.harness.db.session() as session:
            step = await session.scalar(select(PipelineStep).where(PipelineStep.pipeline_id == pipeline.id))
            assert step is not None
            chunks = await session.scalars(select(StepLog.content).where(StepLog.step_id == step.id)
                                           .order_by(StepLog.offset))  # fmt: skip
            return step, "".join(chunks.all())


async def make_world(
    harness_factory: Callable[..., Any], github: tuple[str, FakeGitHub], app_key: tuple[str, str],
    llm: LlmSettings, reviewer: str, **review: Any,
) -> World:  # fmt: skip
    url, fake = github
    harness = await harness_factory(DEFINITION)
    git(harness.repo, "checkout", "-q", "main")
    (harness.repo / "stats.py").write_text("def average(values):\n    return sum(values) / len(values)\n")
    git(harness.repo, "add", "-A")
    git(harness.repo, "commit", "-q", "-m", "stats")
    private, public = app_key
    fake.app_id, fake.app_public_key, fake.installations = APP_ID, public, {"octo/app": INSTALLATION}
    fake.check_runs_need_app = True
    box = SecretBox.from_settings(harness.settings)
    async with harness.db.transaction() as session:
        project = await session.get(Project, harness.project.id)
        assert project is not None
        project.forge, project.owner, project.repo_name = "github", "octo", "app"
        project.settings = {"review": {"reviewer": reviewer, **review}}
    settings = harness.settings.model_copy(
        update={"github": GitHubSettings(api_url=url, app_id=APP_ID, private_key=SecretStr(private)), "llm": llm}
    )
    return World(harness, settings, box, fake)


def openai_settings(url: str) -> LlmSettings:
    return LlmSettings(openai_api_key=SecretStr(OPENAI_KEY), openai_base_url=url)


@pytest.mark.slow  # GitHub's client spaces writes a second apart
async def test_two_planted_bugs_become_annotations_on_their_lines_and_an_unchanged_line_is_only_counted(
    harness_factory: Callable[..., Any],
    github: tuple[str, FakeGitHub],
    app_key: tuple[str, str],
    openai_server: tuple[str, FakeLlm],
) -> None:
    url, model = openai_server
    model.reset(lambda body: verdict(
        bug("stats.py", 2, "return sum(values) / len(values) + 1"),
        bug("stats.py", 9, "return values[1]", severity="major", message="index 1 is the second item"),
        bug("README.md", 1, "hello", severity="major", message="unchanged line"),
    ), api_key=OPENAI_KEY)  # fmt: skip
    world = await make_world(harness_factory, github, app_key, openai_settings(url), "openai")
    pipeline = await world.push({"stats.py": BUGGY})

    assert await world.run(pipeline) == "failed"

    step, log = await world.step(pipeline)
    assert (step.status, step.failure_reason) == ("failed", "code")
    assert step.error_message == "exit code 1 (AI review failed: 2 findings over the policy)"
    assert "findings: 2 on changed lines (2 new, 0 already reported on an earlier push), 1 not on a changed line" in log
    (run,) = world.fake.state.check_runs.values()
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    annotations = sorted((a["path"], a["start_line"], a["end_line"], a["annotation_level"]) for a in run["annotations"])
    assert annotations == [("stats.py", 2, 2, "failure"), ("stats.py", 5, 5, "failure")]  # the quote, not line 9
    assert {a.get("title") for a in run["annotations"]} == {"blocker: bug", "major: bug"}
    assert "1 not on a changed line" in run["summary"]
    # what the model was sent: the PR, the diff with new-file line numbers, one request (+ no repair)
    (request,) = model.requests
    prompt = user_prompt(request.body)
    assert "Title: Average and first" in prompt and "    2 + " in prompt and "return values[1]" in prompt
    assert request.body["model"] and request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    async with world.harness.db.session() as session:
        (call,) = (await session.scalars(select(AiCall))).all()
    assert (call.purpose, call.provider, call.template_name, call.template_version, call.pipeline_id) == (
        "review", "openai", "review.pr", 1, pipeline.id,
    )  # fmt: skip
    assert (call.input_tokens, call.output_tokens, call.requests) == (10, 20, 1)

    # The next push: the same findings are not posted again; a new one is.
    model.reset(lambda body: verdict(
        bug("stats.py", 2, "return sum(values) / len(values) + 1"),
        bug("stats.py", 5, "return values[1]", severity="major", message="index 1 is the second item"),
        bug("extra.py", 1, "print(x)", severity="minor", message="stray print"),
    ))  # fmt: skip
    second = await world.push({"extra.py": "print(x)\n"})
    assert await world.run(second) == "failed"  # the two bugs are still there: the policy still fails it
    runs = [r for r in world.fake.state.check_runs.values() if r["head_sha"] == second.commit_sha]
    (again,) = runs
    assert [(a["path"], a["start_line"]) for a in again["annotations"]] == [("extra.py", 1)]
    _, log = await world.step(second)
    assert "(1 new, 2 already reported on an earlier push)" in log


@pytest.mark.slow
async def test_an_invalid_verdict_is_repaired_once_then_the_step_ends_in_error(
    harness_factory: Callable[..., Any],
    github: tuple[str, FakeGitHub],
    app_key: tuple[str, str],
    anthropic_server: tuple[str, FakeLlm],
) -> None:
    url, model = anthropic_server
    # First request: an end_line before start_line; the repair round: a valid verdict.
    model.reset(lambda body: verdict(
        {**bug("stats.py", 2, "return sum(values) / len(values) + 1", severity="minor"), "end_line": 1}
    ) if turns(body) == 1 else verdict(bug("stats.py", 2, "return sum(values) / len(values) + 1", severity="minor")),
        api_key=ANTHROPIC_KEY)  # fmt: skip
    llm = LlmSettings(anthropic_api_key=SecretStr(ANTHROPIC_KEY), anthropic_base_url=url)
    world = await make_world(harness_factory, github, app_key, llm, "anthropic")
    pipeline = await world.push({"stats.py": BUGGY})
    assert await world.run(pipeline) == "success"  # a minor finding passes the default policy
    assert len(model.requests) == 2
    repair = json.dumps(model.requests[1].body["messages"])
    assert "end_line 1 is before start_line 2" in repair

    model.reset(lambda body: Text("no JSON here"), api_key=ANTHROPIC_KEY)
    second = await world.push({"other.py": "x = 1\n"})
    assert await world.run(second) == "error"
    assert len(model.requests) == 2  # the question and exactly one repair round
    step, log = await world.step(second)
    assert step.status == "error"
    assert step.error_message is not None
    assert step.error_message.startswith("the anthropic reviewer gave no valid verdict for part 1 of 1 after one")
    assert "AI review error" in log
    async with world.harness.db.session() as session:
        calls = (await session.scalars(select(AiCall).where(AiCall.pipeline_id == second.id))).all()
    assert [c.requests for c in calls] == [2]  # the failed rounds are paid for too


@pytest.mark.slow  # a 1,000-file repository, its mirror and diff
async def test_a_large_pr_is_reviewed_in_parallel_chunks_and_its_coverage_names_every_file(
    harness_factory: Callable[..., Any],
    github: tuple[str, FakeGitHub],
    app_key: tuple[str, str],
    openai_server: tuple[str, FakeLlm],
) -> None:
    url, model = openai_server
    model.reset(lambda body: verdict(summary="fine"), delay=0.2, api_key=OPENAI_KEY)
    world = await make_world(harness_factory, github, app_key, openai_settings(url), "openai",
                             max_tokens_per_chunk=4000)  # fmt: skip
    files = {f"pkg/mod{n:04d}.py": f"def f{n}(x):\n    return x + {n}\n" for n in range(1000)}
    pipeline = await world.push(files)

    assert await world.run(pipeline) == "success"

    step, log = await world.step(pipeline)
    assert step.status == "success"
    listed = [line.split()[1] for line in log.splitlines() if line.startswith("  reviewed ")]
    assert sorted(listed) == sorted(files)  # the coverage names every file
    assert "coverage: 1000 reviewed, 0 clipped, 0 skipped" in log
    assert len(model.requests) >= 5  # in chunks of at most 4,000 tokens
    sent = [path for r in model.requests for path in files if f"### {path} " in user_prompt(r.body)]
    assert sorted(sent) == sorted(files)  # every file sent exactly once
    assert 1 < model.max_in_flight <= 4  # in parallel, under the bound
