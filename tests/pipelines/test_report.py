"""ForgeReporter against the fake GitHub (App mode with check runs, token mode without) and the fake GitLab on
loopback: the statuses, check runs, comments and issues a pipeline's result produces, and best-effort errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from taskmaster.core.errors import InvalidInput
from taskmaster.core.logging import configure_logging
from taskmaster.forges.base import Annotation, CheckConclusion, CommitState, ForgeUnavailable, comment_marker
from taskmaster.forges.github.client import GitHubForge
from taskmaster.forges.gitlab.client import GitLabForge
from taskmaster.forges.throttle import RetryPolicy, ThrottleSettings
from taskmaster.pipelines.report import (
    CHECK_RUN_TEXT_LIMIT,
    ForgeReporter,
    PipelineReport,
    StepReport,
    check_run_spec,
    commit_state,
    render_comment,
)
from taskmaster.pipelines.states import FailureReason, PipelineStatus, StepStatus
from tests.forges.fakes.github import PERSONAL_TOKEN, FakeGitHub, serve_github
from tests.forges.fakes.gitlab import TOKEN, FakeGitLab, serve_gitlab
from tests.support import LogCapture

REPO = "acme/api"
PROJECT = "acme/platform/api"
PROJECT_ID = 42
SHA = "0123456789abcdef0123456789abcdef01234567"
NEXT_SHA = "fedcba9876543210fedcba9876543210fedcba98"
DETAILS = "https://taskmaster.example/pipelines/p-1"
FAST_RETRY = RetryPolicy(max_retries=1, backoff_base=0.01, backoff_max=0.02, max_rate_limit_wait=1.0)
NO_THROTTLE = ThrottleSettings(max_concurrency=10, min_write_interval=0.0)
S = StepStatus


# --- servers and clients --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _github_server() -> Iterator[tuple[str, FakeGitHub]]:
    with serve_github() as server:
        yield server


@pytest.fixture(scope="module")
def _gitlab_server() -> Iterator[tuple[str, FakeGitLab]]:
    with serve_gitlab() as server:
        yield server


@pytest.fixture
def github(_github_server: tuple[str, FakeGitHub]) -> FakeGitHub:
    _github_server[1].reset()
    return _github_server[1]


@pytest.fixture
def gitlab(_gitlab_server: tuple[str, FakeGitLab]) -> FakeGitLab:
    _gitlab_server[1].reset()
    return _gitlab_server[1]


@pytest.fixture
async def token_forge(_github_server: tuple[str, FakeGitHub], github: FakeGitHub) -> AsyncIterator[GitHubForge]:
    client = GitHubForge(token=PERSONAL_TOKEN, base_url=_github_server[0], retry=FAST_RETRY, throttle=NO_THROTTLE)
    yield client
    await client.aclose()


@pytest.fixture
async def app_forge(
    _github_server: tuple[str, FakeGitHub], github: FakeGitHub, app_key: tuple[str, str]
) -> AsyncIterator[GitHubForge]:
    private, public = app_key
    github.app_id, github.app_public_key, github.installations = 4242, public, {REPO: 77}
    client = GitHubForge(
        app_id=4242, private_key=private, base_url=_github_server[0], retry=FAST_RETRY, throttle=NO_THROTTLE
    )
    yield client
    await client.aclose()


@pytest.fixture
async def gitlab_forge(_gitlab_server: tuple[str, FakeGitLab], gitlab: FakeGitLab) -> AsyncIterator[GitLabForge]:
    client = GitLabForge(token=TOKEN, base_url=_gitlab_server[0], retry=FAST_RETRY, throttle=NO_THROTTLE)
    yield client
    await client.aclose()


# --- reports ------------------------------------------------------------------------------------------------


def step(name: str, status: StepStatus, **fields: object) -> StepReport:
    return StepReport(name, status, **fields)  # type: ignore[arg-type]


def lint_failure(**fields: object) -> StepReport:
    values: dict[str, object] = {
        "failure_reason": FailureReason.CODE,
        "exit_code": 1,
        "duration_ms": 3100,
        "error_message": "ruff found 2 problems",
        "log_tail": "src/app.py:3:1: F401 `os` imported but unused\nFound 2 errors.\n",
    }
    values.update(fields)
    return step("lint", S.FAILED, **values)


def failed_report(repo: str = REPO, **fields: object) -> PipelineReport:
    values: dict[str, object] = {
        "pipeline_id": "p-1",
        "repo": repo,
        "commit_sha": SHA,
        "pull_request_number": 7,
        "status": PipelineStatus.FAILED,
        "failure_reason": FailureReason.CODE,
        "duration_ms": 83_000,
        "steps": (
            step("install", S.SUCCESS, duration_ms=12_000),
            lint_failure(),
            step("test", S.SKIPPED),
        ),
        "details_url": DETAILS,
    }
    values.update(fields)
    return PipelineReport(**values)  # type: ignore[arg-type]


def running_report(repo: str = REPO, **fields: object) -> PipelineReport:
    values: dict[str, object] = {
        "status": PipelineStatus.RUNNING,
        "failure_reason": None,
        "duration_ms": None,
        "steps": (
            step("install", S.SUCCESS, duration_ms=12_000),
            step("lint", S.RUNNING),
            step("test", S.WAITING),
        ),
    }
    values.update(fields)
    return failed_report(repo, **values)


def passed_report(repo: str = REPO, **fields: object) -> PipelineReport:
    values: dict[str, object] = {
        "status": PipelineStatus.SUCCESS,
        "failure_reason": None,
        "steps": (
            step("install", S.SUCCESS, duration_ms=12_000),
            step("lint", S.SUCCESS, duration_ms=3_100),
            step("test", S.SUCCESS, duration_ms=40_000),
        ),
    }
    values.update(fields)
    return failed_report(repo, **values)


def findings(count: int) -> tuple[Annotation, ...]:
    return tuple(Annotation(f"src/m{i}.py", i + 1, i + 1, f"E{i}: problem {i}") for i in range(count))


def github_statuses(fake: FakeGitHub) -> dict[str, str]:
    """The last state sent per context."""
    return {r.json["context"]: r.json["state"] for r in fake.matching("POST", f"/repos/{REPO}/statuses/")}


def gitlab_statuses(fake: FakeGitLab) -> dict[str, str]:
    return {s["name"]: s["status"] for s in fake.state.statuses}


# --- commit statuses ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (S.PENDING, CommitState.PENDING),
        (S.QUEUED, CommitState.PENDING),
        (S.WAITING, CommitState.PENDING),
        (S.RETRY_SCHEDULED, CommitState.PENDING),
        (S.RUNNING, CommitState.RUNNING),
        (S.SUCCESS, CommitState.SUCCESS),
        (S.FAILED, CommitState.FAILURE),
        (S.ERROR, CommitState.ERROR),
        (S.TIMED_OUT, CommitState.ERROR),
        (S.CANCELED, CommitState.CANCELED),
        (S.SKIPPED, CommitState.SKIPPED),
        (PipelineStatus.QUEUED, CommitState.PENDING),
        (PipelineStatus.FAILED, CommitState.FAILURE),
        (PipelineStatus.TIMED_OUT, CommitState.ERROR),
    ],
)
def test_taskmaster_statuses_map_to_commit_states(status: StepStatus | PipelineStatus, expected: CommitState) -> None:
    assert commit_state(status) is expected


async def test_github_gets_one_status_per_step_and_one_for_the_pipeline_with_mapped_states(
    token_forge: GitHubForge, github: FakeGitHub
) -> None:
    report = failed_report(
        steps=(
            step("install", S.SUCCESS, duration_ms=12_000),
            lint_failure(),
            step("test", S.ERROR, failure_reason=FailureReason.INFRA, error_message="sandbox lost"),
            step("typecheck", S.TIMED_OUT, failure_reason=FailureReason.TIMEOUT, duration_ms=600_000),
            step("review", S.SKIPPED),
            step("notify", S.CANCELED),
        )
    )
    result = await ForgeReporter(token_forge).report(report)

    assert result.ok and result.check_run_id is None
    sent = github.matching("POST", f"/repos/{REPO}/statuses/{SHA}")
    assert [r.json["context"] for r in sent] == [
        "taskmaster/install",
        "taskmaster/lint",
        "taskmaster/test",
        "taskmaster/typecheck",
        "taskmaster/review",
        "taskmaster/notify",
        "taskmaster",
    ]
    # GitHub knows four states: skipped passes, canceled and errors are "error".
    assert [r.json["state"] for r in sent] == ["success", "failure", "error", "error", "success", "error", "failure"]
    assert all(r.json["target_url"] == DETAILS for r in sent)
    described = {r.json["context"]: r.json["description"] for r in sent}
    assert described["taskmaster/install"] == "passed (12.0 s)"
    assert described["taskmaster/lint"] == "failed (code failure, exit 1, 3.1 s): ruff found 2 problems"
    assert described["taskmaster/test"] == "error (infra failure): sandbox lost"
    assert described["taskmaster/typecheck"] == "timed out (timeout failure, 10m 00s)"
    assert described["taskmaster"] == "Failed at lint, test, typecheck (code failure, 1m 23s)"
    assert not github.matching(path_contains="/check-runs")


async def test_gitlab_gets_each_step_status_in_its_own_state_names(
    gitlab_forge: GitLabForge, gitlab: FakeGitLab
) -> None:
    every = tuple(step(f"s-{status.value}", status) for status in StepStatus)
    report = running_report(PROJECT, steps=every)
    result = await ForgeReporter(gitlab_forge).report(report)

    assert result.ok
    assert gitlab_statuses(gitlab) == {
        "taskmaster/s-pending": "pending",
        "taskmaster/s-waiting": "pending",
        "taskmaster/s-queued": "pending",
        "taskmaster/s-running": "running",
        "taskmaster/s-retry_scheduled": "pending",
        "taskmaster/s-awaiting_recovery": "pending",
        "taskmaster/s-success": "success",
        "taskmaster/s-failed": "failed",
        "taskmaster/s-error": "failed",
        "taskmaster/s-skipped": "skipped",
        "taskmaster/s-canceled": "canceled",
        "taskmaster/s-timed_out": "failed",
        "taskmaster": "running",
    }
    overall = [s for s in gitlab.state.statuses if s["name"] == "taskmaster"]
    assert overall[0]["description"] == "Running: 6 of 12 steps finished"
    assert all(r.path.startswith("/api/v4/projects/acme%2Fplatform%2Fapi/statuses/") for r in gitlab.requests)


async def test_an_unchanged_status_is_not_sent_again(token_forge: GitHubForge, github: FakeGitHub) -> None:
    reporter = ForgeReporter(token_forge)
    await reporter.report(running_report())
    await reporter.report(running_report())
    moved = running_report(
        steps=(step("install", S.SUCCESS, duration_ms=12_000), lint_failure(), step("test", S.SKIPPED))
    )
    await reporter.report(moved)

    sent = [(r.json["context"], r.json["state"]) for r in github.matching("POST", "/statuses/")]
    assert sent == [
        ("taskmaster/install", "success"),
        ("taskmaster/lint", "pending"),
        ("taskmaster/test", "pending"),
        ("taskmaster", "pending"),
        # Second report: nothing changed, nothing sent. Third: only what moved (the overall text changed too).
        ("taskmaster/lint", "failure"),
        ("taskmaster/test", "success"),
        ("taskmaster", "pending"),
    ]
    resent = await ForgeReporter(token_forge, skip_unchanged=False).report(moved)
    assert resent.ok and len(github.matching("POST", "/statuses/")) == 11


# --- check runs ---------------------------------------------------------------------------------------------


async def test_a_running_then_a_finished_report_create_one_check_run_then_update_it(
    app_forge: GitHubForge, github: FakeGitHub
) -> None:
    reporter = ForgeReporter(app_forge)
    running = running_report(
        steps=(step("install", S.SUCCESS, duration_ms=12_000, annotations=findings(2)), step("lint", S.RUNNING))
    )
    first = await reporter.report(running)
    assert first.ok and first.check_run_id is not None

    finished = failed_report(
        steps=(step("install", S.SUCCESS, duration_ms=12_000, annotations=findings(2)), lint_failure())
    )
    second = await reporter.report(finished, previous_check_run_id=first.check_run_id)

    assert second.ok and second.check_run_id == first.check_run_id
    created = github.matching("POST", f"/repos/{REPO}/check-runs")
    assert len(created) == 1
    assert created[0].json["name"] == "taskmaster" and created[0].json["head_sha"] == SHA
    assert created[0].json["status"] == "in_progress" and "conclusion" not in created[0].json
    assert created[0].json["external_id"] == "p-1" and created[0].json["details_url"] == DETAILS
    # GitHub appends annotations on every update: they go out once, with the finished run.
    assert "annotations" not in created[0].json["output"]

    updates = github.matching("PATCH", f"/repos/{REPO}/check-runs/{first.check_run_id}")
    assert len(updates) == 1
    body = updates[0].json
    assert (body["status"], body["conclusion"]) == ("completed", "failure")
    assert body["output"]["title"] == "Failed at lint (code failure, 1m 23s)"
    summary = body["output"]["summary"]
    assert "| Step | Status | Duration | Reason |" in summary
    assert "| install | ✅ passed | 12.0 s |  |" in summary
    assert "| lint | ❌ failed | 3.1 s | code failure, exit 1 |" in summary
    assert "F401 `os` imported but unused" in body["output"]["text"]
    assert len(body["output"]["annotations"]) == 2

    run = github.state.check_runs[int(first.check_run_id)]
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    assert len(run["annotations"]) == 2
    assert github_statuses(github)["taskmaster"] == "failure"


async def test_120_annotations_reach_the_check_run_in_batches_of_at_most_50(
    app_forge: GitHubForge, github: FakeGitHub
) -> None:
    finished = failed_report(
        steps=(
            step("install", S.SUCCESS, duration_ms=12_000),
            lint_failure(annotations=findings(70)),
            step("test", S.FAILED, failure_reason=FailureReason.CODE, annotations=findings(50)),
        )
    )
    result = await ForgeReporter(app_forge).report(finished)

    assert result.ok and result.check_run_id is not None
    sent = github.matching(path_contains="/check-runs")
    assert [(r.method, len(r.json["output"]["annotations"])) for r in sent] == [
        ("POST", 50),
        ("PATCH", 50),
        ("PATCH", 20),
    ]
    assert len(github.state.check_runs[int(result.check_run_id)]["annotations"]) == 120


async def test_a_check_run_gone_from_the_forge_is_created_again(app_forge: GitHubForge, github: FakeGitHub) -> None:
    result = await ForgeReporter(app_forge).report(passed_report(), previous_check_run_id="999999")

    assert result.ok and result.check_run_id is not None and result.check_run_id != "999999"
    assert len(github.matching("PATCH", "/check-runs/999999")) == 1
    assert github.state.check_runs[int(result.check_run_id)]["conclusion"] == "success"


async def test_a_long_log_is_cut_to_githubs_text_limit_keeping_its_end(
    app_forge: GitHubForge, github: FakeGitHub
) -> None:
    log_tail = "".join(f"line {i:06d} " + "x" * 80 + "\n" for i in range(3000)) + "FINAL assertion error\n"
    assert len(log_tail) > 4 * CHECK_RUN_TEXT_LIMIT
    finished = failed_report(steps=(lint_failure(log_tail=log_tail),))
    result = await ForgeReporter(app_forge).report(finished)

    assert result.ok
    text = github.matching("POST", "/check-runs")[0].json["output"]["text"]
    assert len(text) <= CHECK_RUN_TEXT_LIMIT
    assert "FINAL assertion error" in text
    assert "earlier characters not shown]" in text
    assert "line 000000" not in text

    comment = github.comments_on(REPO, 7)[0]["body"]
    assert len(comment) < 20_000 and "FINAL assertion error" in comment


async def test_gitlab_has_no_check_runs_so_only_statuses_are_sent(
    gitlab_forge: GitLabForge, gitlab: FakeGitLab
) -> None:
    result = await ForgeReporter(gitlab_forge).report(running_report(PROJECT))

    assert result.ok and result.check_run_id is None
    assert [s["name"] for s in gitlab.state.statuses] == [
        "taskmaster/install",
        "taskmaster/lint",
        "taskmaster/test",
        "taskmaster",
    ]


# --- pull request comment -----------------------------------------------------------------------------------


async def test_two_finished_runs_on_a_github_pull_request_post_one_comment_then_edit_it(
    token_forge: GitHubForge, github: FakeGitHub
) -> None:
    github.add_comment(REPO, 7, "LGTM, waiting for CI", author="reviewer")
    reporter = ForgeReporter(token_forge)
    first = await reporter.report(failed_report())
    second = await reporter.report(passed_report(commit_sha=NEXT_SHA, pipeline_id="p-2"))

    assert first.ok and second.ok
    assert first.comment_id is not None and second.comment_id == first.comment_id
    assert len(github.matching("POST", f"/repos/{REPO}/issues/7/comments")) == 1
    edits = github.matching("PATCH", "/issues/comments/")
    assert [r.path for r in edits] == [f"/repos/{REPO}/issues/comments/{first.comment_id}"]
    ours = [c for c in github.comments_on(REPO, 7) if c["author"] != "reviewer"]
    assert len(ours) == 1
    body = ours[0]["body"]
    assert body.startswith(comment_marker("pipeline"))
    assert "### ✅ Taskmaster: Passed: 3 steps in 1m 23s" in body
    assert f"Commit `{NEXT_SHA[:12]}`" in body and SHA[:12] not in body
    assert "| test | ✅ passed | 40.0 s |  |" in body


async def test_two_finished_runs_on_a_gitlab_merge_request_post_one_note_then_edit_it(
    gitlab_forge: GitLabForge, gitlab: FakeGitLab
) -> None:
    reporter = ForgeReporter(gitlab_forge)
    first = await reporter.report(failed_report(PROJECT))
    second = await reporter.report(passed_report(PROJECT, commit_sha=NEXT_SHA))

    assert first.ok and second.ok and second.comment_id == first.comment_id
    notes = "/merge_requests/7/notes"
    assert len(gitlab.matching("POST", notes)) == 1
    assert [r.path.rsplit("/", 1)[-1] for r in gitlab.matching("PUT", notes)] == [first.comment_id]
    (note,) = gitlab.notes_on(PROJECT_ID, 7)
    assert "Passed: 3 steps" in note["body"]


async def test_the_comment_shows_the_failing_step_in_a_collapsible_block_with_an_inert_log(
    token_forge: GitHubForge, github: FakeGitHub
) -> None:
    log_tail = "```\n@maintainers please look\n```\nAssertionError: 1 != 2\n"
    await ForgeReporter(token_forge).report(failed_report(steps=(lint_failure(log_tail=log_tail),)))

    (comment,) = github.comments_on(REPO, 7)
    body = comment["body"]
    assert "### ❌ Taskmaster: Failed at lint (code failure, 1m 23s)" in body
    assert "<details><summary><b>lint</b>: failed (code failure, exit 1)</summary>" in body
    assert "```text\nruff found 2 problems\n```" in body
    # A fence longer than any backtick run in the log: the log cannot close it, so no mention is rendered.
    assert "````text\n```\n@maintainers please look\n```\nAssertionError: 1 != 2\n````" in body
    assert body.rstrip().endswith("</details>")
    assert f"[Pipeline details]({DETAILS})" in body


async def test_no_comment_before_the_pipeline_finishes(app_forge: GitHubForge, github: FakeGitHub) -> None:
    reporter = ForgeReporter(app_forge)
    queued = await reporter.report(running_report(status=PipelineStatus.QUEUED, steps=(step("lint", S.PENDING),)))
    running = await reporter.report(running_report(), previous_check_run_id=queued.check_run_id)

    assert queued.comment_id is None and running.comment_id is None
    assert github.comments_on(REPO, 7) == []
    assert github.matching("POST", "/check-runs")[0].json["status"] == "queued"
    assert github.matching("PATCH", "/check-runs/")[0].json["status"] == "in_progress"


# --- issue for manual review --------------------------------------------------------------------------------


async def test_a_code_failure_with_open_issue_opens_one_issue_naming_the_failing_step(
    token_forge: GitHubForge, github: FakeGitHub
) -> None:
    result = await ForgeReporter(token_forge, issue_labels=["taskmaster"]).report(failed_report(), open_issue=True)

    assert result.ok and result.issue is not None
    (issue,) = github.state.issues
    assert result.issue.number == issue["number"]
    assert issue["title"] == f"Manual review: pipeline p-1 failed at step 'lint' on commit {SHA[:12]}"
    assert issue["labels"] == ["taskmaster"]
    assert f"- Pipeline: [p-1]({DETAILS})" in issue["body"]
    assert "- Pull request: #7" in issue["body"]
    assert "F401 `os` imported but unused" in issue["body"]


async def test_gitlab_issue_refers_to_the_merge_request_with_its_own_sigil(
    gitlab_forge: GitLabForge, gitlab: FakeGitLab
) -> None:
    result = await ForgeReporter(gitlab_forge).report(failed_report(PROJECT), open_issue=True)

    assert result.ok and result.issue is not None and result.issue.url.endswith("/-/issues/1")
    (issue,) = gitlab.state.issues
    assert "'lint'" in issue["title"] and "- Merge request: !7" in issue["description"]


@pytest.mark.parametrize(
    ("report", "open_issue"),
    [
        (failed_report(), False),
        (failed_report(failure_reason=FailureReason.INFRA), True),
        (failed_report(status=PipelineStatus.ERROR, failure_reason=FailureReason.CODE), True),
        (passed_report(), True),
    ],
    ids=["not-asked", "infra-failure", "error-status", "passed"],
)
async def test_no_issue_unless_asked_for_a_code_failure(
    token_forge: GitHubForge, github: FakeGitHub, report: PipelineReport, open_issue: bool
) -> None:
    result = await ForgeReporter(token_forge).report(report, open_issue=open_issue)

    assert result.ok and result.issue is None
    assert github.state.issues == []
    assert not [r for r in github.matching("POST") if r.path == f"/repos/{REPO}/issues"]


# --- superseded ---------------------------------------------------------------------------------------------


async def test_a_superseded_pipeline_is_reported_canceled_on_github_never_failed(
    app_forge: GitHubForge, github: FakeGitHub
) -> None:
    superseded = failed_report(
        status=PipelineStatus.CANCELED,
        superseded=True,
        steps=(step("install", S.SUCCESS, duration_ms=12_000), lint_failure(annotations=findings(3))),
    )
    result = await ForgeReporter(app_forge).report(superseded, open_issue=True)

    assert result.ok and result.comment_id is None and result.issue is None
    states = github_statuses(github)
    assert states == {"taskmaster/install": "success", "taskmaster/lint": "error", "taskmaster": "error"}
    assert "failure" not in {r.json["state"] for r in github.matching("POST", "/statuses/")}
    overall = github.matching("POST", "/statuses/")[-1].json
    assert overall["description"] == "Canceled: superseded by a newer commit"
    (created,) = github.matching("POST", "/check-runs")
    assert (created.json["status"], created.json["conclusion"]) == ("completed", "cancelled")
    assert "annotations" not in created.json["output"] and "text" not in created.json["output"]
    assert "superseded" in created.json["output"]["summary"]
    # The newer commit's pipeline owns the pull request's comment.
    assert github.comments_on(REPO, 7) == []


async def test_a_superseded_pipeline_is_reported_canceled_on_gitlab(
    gitlab_forge: GitLabForge, gitlab: FakeGitLab
) -> None:
    superseded = running_report(PROJECT, superseded=True)
    result = await ForgeReporter(gitlab_forge).report(superseded)

    assert result.ok
    assert gitlab_statuses(gitlab) == {
        "taskmaster/install": "success",
        "taskmaster/lint": "canceled",
        "taskmaster/test": "canceled",
        "taskmaster": "canceled",
    }
    assert all("superseded" in s["description"] for s in gitlab.state.statuses if s["name"] != "taskmaster/install")


# --- errors -------------------------------------------------------------------------------------------------


async def test_a_forge_error_is_collected_and_logged_while_the_comment_is_still_written(
    token_forge: GitHubForge, github: FakeGitHub
) -> None:
    # Every status request answers 500 until the client's retries are spent.
    github.server_error(status=500, times=100, path="/statuses/")
    capture = LogCapture()
    configure_logging("info", "json", stream=capture)
    try:
        result = await ForgeReporter(token_forge).report(failed_report(), open_issue=True)
    finally:
        configure_logging("warning", "auto", stream=LogCapture())

    assert not result.ok
    assert len(result.errors) == 4
    assert all(isinstance(error, ForgeUnavailable) and error.extra["status"] == 500 for error in result.errors)
    assert len(github.matching("POST", "/statuses/")) == 8  # four statuses, each tried twice
    assert github.state.statuses == []
    assert result.comment_id is not None and len(github.comments_on(REPO, 7)) == 1
    assert result.issue is not None and len(github.state.issues) == 1

    warnings = [r for r in capture.records() if r["event"] == "forge report failed"]
    assert [w["action"] for w in warnings] == [
        "status taskmaster/install",
        "status taskmaster/lint",
        "status taskmaster/test",
        "status taskmaster",
    ]
    assert all(w["level"] == "warning" and w["pipeline_id"] == "p-1" and w["forge"] == "github" for w in warnings)
    assert PERSONAL_TOKEN not in capture.getvalue()


async def test_a_failed_check_run_update_keeps_the_previous_id_for_the_next_report(
    app_forge: GitHubForge, github: FakeGitHub
) -> None:
    reporter = ForgeReporter(app_forge)
    first = await reporter.report(running_report())
    github.server_error(status=502, times=10, path="/check-runs/")
    second = await reporter.report(passed_report(), previous_check_run_id=first.check_run_id)

    assert [type(error) for error in second.errors] == [ForgeUnavailable]
    assert second.check_run_id == first.check_run_id
    assert len(github.matching("POST", "/check-runs")) == 1
    assert github_statuses(github)["taskmaster"] == "success"


# --- values -------------------------------------------------------------------------------------------------


def test_reports_accept_status_strings_read_from_the_database_and_refuse_unknown_ones() -> None:
    report = PipelineReport(
        "p-9",
        REPO,
        SHA,
        None,
        "failed",  # type: ignore[arg-type]
        failure_reason="code",  # type: ignore[arg-type]
        steps=[StepReport("lint", "failed", failure_reason="code")],  # type: ignore[arg-type]
    )
    assert report.status is PipelineStatus.FAILED and report.failure_reason is FailureReason.CODE
    assert report.steps[0].status is S.FAILED and isinstance(report.steps, tuple)
    with pytest.raises(InvalidInput):
        StepReport("lint", "exploded")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        replace(report, commit_sha="")
    with pytest.raises(InvalidInput):
        ForgeReporter(GitLabForge(token=TOKEN), context_prefix="")


# --- a review skipped for a reason (no reviewer, nothing to review) is never reported as passing ----------------


def skipped_review_report(repo: str = REPO) -> PipelineReport:
    steps = (
        step("install", S.SUCCESS, duration_ms=12_000),
        step("review", S.SKIPPED, error_message="AI review is not configured"),
        step("notify", S.SKIPPED),
    )
    return passed_report(repo, steps=steps)


async def test_a_skipped_review_gets_no_green_status_on_github_and_its_reason_in_the_overall_one(
    token_forge: GitHubForge, github: FakeGitHub
) -> None:
    result = await ForgeReporter(token_forge).report(skipped_review_report())

    assert result.ok
    sent = {r.json["context"]: (r.json["state"], r.json["description"]) for r in github.matching("POST", "/statuses/")}
    assert "taskmaster/review" not in sent  # GitHub has no skipped state: success would claim it passed
    assert sent["taskmaster/notify"][0] == "success"  # a step not needed still reads as GitHub treats skips
    assert sent["taskmaster"] == ("success", "Passed: 3 steps in 1m 23s; skipped: review (AI review is not configured)")


async def test_a_skipped_review_is_skipped_on_gitlab_and_makes_the_check_run_neutral(
    gitlab_forge: GitLabForge, gitlab: FakeGitLab, app_forge: GitHubForge, github: FakeGitHub
) -> None:
    assert (await ForgeReporter(gitlab_forge).report(skipped_review_report(PROJECT))).ok
    assert gitlab_statuses(gitlab)["taskmaster/review"] == "skipped"
    described = {s["name"]: s["description"] for s in gitlab.state.statuses}
    assert described["taskmaster/review"] == "skipped: AI review is not configured"

    spec = check_run_spec(skipped_review_report())
    assert (spec.status.value, spec.conclusion) == ("completed", CheckConclusion.NEUTRAL)
    assert check_run_spec(passed_report()).conclusion is CheckConclusion.SUCCESS


def test_a_review_steps_summary_goes_into_the_comment_and_the_check_run() -> None:
    section = "#### ❌ AI review failed (openai)\n\n1 findings on changed lines"
    steps = (step("install", S.SUCCESS), step("review", S.FAILED, failure_reason=FailureReason.CODE, summary=section))
    report = failed_report(steps=steps)
    assert section in render_comment(report)
    assert section in check_run_spec(report).summary
    assert section not in render_comment(replace(report, superseded=True))
