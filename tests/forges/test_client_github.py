"""GitHubForge (githubkit) against a fake GitHub on loopback: what is sent (paths, bodies, headers), batching,
persistent comments, App installation tokens, rate limits, retries, throttling and errors.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from taskmaster.core.errors import InvalidInput, NotFound, Unauthenticated, Unavailable
from taskmaster.forges.base import (
    Annotation,
    AnnotationLevel,
    CheckConclusion,
    CheckRunSpec,
    CheckStatus,
    CommitState,
    ForgeAuthError,
    ForgeCapabilities,
    ForgeConflict,
    ForgeNotFound,
    ForgeRateLimited,
    IssueRef,
    Permission,
    PullRequestRef,
    comment_marker,
)
from taskmaster.forges.github.client import GitHubForge
from taskmaster.forges.throttle import ThrottleSettings
from tests.forges.conftest import FAST_RETRY, NO_THROTTLE
from tests.forges.fakes.github import PERSONAL_TOKEN, FakeGitHub

REPO = "acme/api"
SHA = "0123456789abcdef0123456789abcdef01234567"


FORGE = "github"
"""Which forge the `fake` and `forge` fixtures (conftest.py) serve."""


def app_forge(url: str, private_pem: str, **options: Any) -> GitHubForge:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("throttle", NO_THROTTLE)
    return GitHubForge(app_id=4242, private_key=private_pem, base_url=url, **options)


def many_annotations(count: int) -> tuple[Annotation, ...]:
    return tuple(
        Annotation(path=f"src/m{i}.py", start_line=i + 1, end_line=i + 1, message=f"E{i}: problem {i}", title=f"E{i}")
        for i in range(count)
    )


async def test_pipeline_result_sequence_reports_statuses_and_check_runs_in_batches_of_at_most_50(
    forge: GitHubForge, fake: FakeGitHub
) -> None:
    await forge.set_commit_status(
        REPO, SHA, context="taskmaster/pipeline", state=CommitState.RUNNING, description="running 3 steps"
    )
    lint = CheckRunSpec(name="lint", head_sha=SHA, status=CheckStatus.IN_PROGRESS, title="Lint", summary="running")
    lint_id = await forge.create_check_run(REPO, lint)
    test_id = await forge.create_check_run(
        REPO,
        CheckRunSpec(
            name="test",
            head_sha=SHA,
            status=CheckStatus.COMPLETED,
            conclusion=CheckConclusion.SUCCESS,
            title="Tests passed",
            summary="**42** passed",
            details_url="https://taskmaster.example/pipelines/7",
            external_id="step-test",
        ),
    )
    failed = CheckRunSpec(
        name="lint",
        head_sha=SHA,
        status=CheckStatus.COMPLETED,
        conclusion=CheckConclusion.FAILURE,
        title="120 lint errors",
        summary="ruff found **120** problems",
        text="see the annotations",
        annotations=many_annotations(120),
    )
    await forge.update_check_run(REPO, lint_id, failed)
    await forge.set_commit_status(
        REPO,
        SHA,
        context="taskmaster/pipeline",
        state=CommitState.FAILURE,
        description="lint failed",
        target_url="https://taskmaster.example/pipelines/7",
    )

    statuses = fake.matching("POST", f"/repos/{REPO}/statuses/{SHA}")
    assert [r.json for r in statuses] == [
        {"state": "pending", "context": "taskmaster/pipeline", "description": "running 3 steps"},
        {
            "state": "failure",
            "context": "taskmaster/pipeline",
            "description": "lint failed",
            "target_url": "https://taskmaster.example/pipelines/7",
        },
    ]
    created = fake.matching("POST", f"/repos/{REPO}/check-runs")
    assert [r.json["name"] for r in created] == ["lint", "test"]
    assert created[0].json == {
        "name": "lint",
        "head_sha": SHA,
        "status": "in_progress",
        "output": {"title": "Lint", "summary": "running"},
    }
    assert created[1].json["conclusion"] == "success"
    assert created[1].json["details_url"] == "https://taskmaster.example/pipelines/7"
    assert created[1].json["external_id"] == "step-test"

    updates = fake.matching("PATCH", f"/repos/{REPO}/check-runs/{lint_id}")
    assert [len(r.json["output"]["annotations"]) for r in updates] == [50, 50, 20]
    assert updates[0].json["status"] == "completed" and updates[0].json["conclusion"] == "failure"
    assert all(r.json["output"]["title"] == "120 lint errors" for r in updates)
    assert all(r.json["output"]["text"] == "see the annotations" for r in updates)
    assert updates[0].json["output"]["annotations"][0] == {
        "path": "src/m0.py",
        "start_line": 1,
        "end_line": 1,
        "annotation_level": "failure",
        "message": "E0: problem 0",
        "title": "E0",
    }

    run = fake.state.check_runs[int(lint_id)]
    assert [a["message"] for a in run["annotations"]] == [f"E{i}: problem {i}" for i in range(120)]
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    assert fake.state.check_runs[int(test_id)]["conclusion"] == "success"
    for request in fake.requests:
        assert request.headers["authorization"] == f"token {PERSONAL_TOKEN}"
        assert request.headers["user-agent"] == "Taskmaster"
        assert request.headers["x-github-api-version"]


async def test_create_check_run_with_120_annotations_sends_one_create_and_two_updates(
    forge: GitHubForge, fake: FakeGitHub
) -> None:
    spec = CheckRunSpec(
        name="review",
        head_sha=SHA,
        status=CheckStatus.COMPLETED,
        conclusion=CheckConclusion.NEUTRAL,
        summary="AI review",
        annotations=many_annotations(120),
    )
    check_id = await forge.create_check_run(REPO, spec)

    sent = [r for r in fake.requests if "/check-runs" in r.path]
    assert [(r.method, len(r.json["output"]["annotations"])) for r in sent] == [
        ("POST", 50),
        ("PATCH", 50),
        ("PATCH", 20),
    ]
    assert all(r.path.endswith(f"/check-runs/{check_id}") for r in sent[1:])
    # Follow-up batches carry the output only: the run's status and conclusion are set once.
    assert all(set(r.json) == {"output"} for r in sent[1:])
    assert sent[1].json["output"]["title"] == "review"
    assert len(fake.state.check_runs[int(check_id)]["annotations"]) == 120


async def test_annotation_levels_and_timestamps_are_sent_in_github_format(forge: GitHubForge, fake: FakeGitHub) -> None:
    from datetime import UTC, datetime

    spec = CheckRunSpec(
        name="lint",
        head_sha=SHA,
        status=CheckStatus.COMPLETED,
        conclusion=CheckConclusion.SUCCESS,
        summary="ok",
        annotations=(Annotation("a.py", 3, 4, "style", level=AnnotationLevel.WARNING),),
        started_at=datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
        completed_at=datetime(2024, 5, 1, 12, 1, 30, tzinfo=UTC),
    )
    await forge.create_check_run(REPO, spec)

    body = fake.matching("POST", "/check-runs")[0].json
    assert body["started_at"] == "2024-05-01T12:00:00Z"
    assert body["completed_at"] == "2024-05-01T12:01:30Z"
    assert body["output"]["annotations"] == [
        {"path": "a.py", "start_line": 3, "end_line": 4, "annotation_level": "warning", "message": "style"}
    ]


def test_a_check_run_spec_needs_a_conclusion_exactly_when_completed() -> None:
    with pytest.raises(InvalidInput):
        CheckRunSpec(name="x", head_sha=SHA, status=CheckStatus.COMPLETED)
    with pytest.raises(InvalidInput):
        CheckRunSpec(name="x", head_sha=SHA, status=CheckStatus.IN_PROGRESS, conclusion=CheckConclusion.SUCCESS)
    with pytest.raises(InvalidInput):
        Annotation("a.py", 5, 4, "end before start")


async def test_every_commit_state_maps_to_a_github_status_state(forge: GitHubForge, fake: FakeGitHub) -> None:
    expected = {
        CommitState.PENDING: "pending",
        CommitState.RUNNING: "pending",
        CommitState.SUCCESS: "success",
        CommitState.FAILURE: "failure",
        CommitState.ERROR: "error",
        CommitState.CANCELED: "error",
        CommitState.SKIPPED: "success",
    }
    for state in CommitState:
        await forge.set_commit_status(REPO, SHA, context=f"ctx/{state}", state=state)
    sent = {r.json["context"]: r.json["state"] for r in fake.matching("POST", "/statuses/")}
    assert sent == {f"ctx/{state}": github_state for state, github_state in expected.items()}


async def test_a_long_status_description_is_cut_to_githubs_140_characters(forge: GitHubForge, fake: FakeGitHub) -> None:
    await forge.set_commit_status(REPO, SHA, context="c", state=CommitState.FAILURE, description="x" * 500)
    description = fake.matching("POST", "/statuses/")[0].json["description"]
    assert len(description) == 140 and description.endswith("…")


async def test_upsert_comment_follows_link_pagination_to_find_its_comment(forge: GitHubForge, fake: FakeGitHub) -> None:
    fake.page_size = 2
    for i in range(5):
        fake.add_comment(REPO, 3, f"human comment {i}")
    fake.add_comment(REPO, 3, f"> quoting {comment_marker('summary')} is not the comment")
    mine = fake.add_comment(REPO, 3, f"{comment_marker('summary')}\nold", author="taskmaster[bot]")
    fake.add_comment(REPO, 3, "later human comment")

    found = await forge.upsert_comment(REPO, 3, marker="summary", body="new")

    assert found == str(mine)
    pages = fake.matching("GET", f"/repos/{REPO}/issues/3/comments")
    assert [r.query.get("page", "1") for r in pages] == ["1", "2", "3", "4"]
    assert pages[0].query["per_page"] == "100"
    assert fake.matching("POST", "/comments") == []
    assert fake.state.comments[mine]["body"] == f"{comment_marker('summary')}\nnew"


async def test_upsert_comment_with_an_unchanged_body_writes_nothing(forge: GitHubForge, fake: FakeGitHub) -> None:
    await forge.upsert_comment(REPO, 5, marker="m", body="same")
    await forge.upsert_comment(REPO, 5, marker="m", body="same")
    assert [r.method for r in fake.requests] == ["GET", "POST", "GET"]


async def test_create_issue_sends_title_body_and_labels(forge: GitHubForge, fake: FakeGitHub) -> None:
    issue = await forge.create_issue(
        REPO, title="Pipeline 7 needs a person", body="The AI debugger found no fix.", labels=["taskmaster", "ci"]
    )
    assert isinstance(issue, IssueRef)
    assert issue.number == 1
    assert issue.url.endswith(f"/{REPO}/issues/1")
    assert fake.matching("POST", f"/repos/{REPO}/issues")[0].json == {
        "title": "Pipeline 7 needs a person",
        "body": "The AI debugger found no fix.",
        "labels": ["taskmaster", "ci"],
    }


async def test_create_branch_then_pull_request(forge: GitHubForge, fake: FakeGitHub) -> None:
    await forge.create_branch(REPO, "taskmaster/task-12", SHA)
    pr = await forge.create_pull_request(
        REPO, head="taskmaster/task-12", base="main", title="Task 12", body="Implements task 12", draft=True
    )

    assert fake.matching("POST", f"/repos/{REPO}/git/refs")[0].json == {
        "ref": "refs/heads/taskmaster/task-12",
        "sha": SHA,
    }
    assert fake.matching("POST", f"/repos/{REPO}/pulls")[0].json == {
        "head": "taskmaster/task-12",
        "base": "main",
        "title": "Task 12",
        "body": "Implements task 12",
        "draft": True,
    }
    assert isinstance(pr, PullRequestRef)
    assert pr.number == 1 and pr.url.endswith(f"/{REPO}/pull/1")


async def test_read_file_returns_raw_bytes_and_none_when_absent(forge: GitHubForge, fake: FakeGitHub) -> None:
    fake.state.files[(REPO, "feature", ".taskmaster.yml")] = b"steps:\n  test: {run: pytest}\n"
    fake.state.files[(REPO, SHA, "docs/my notes.md")] = b"\x00binary\xff"

    assert await forge.read_file(REPO, ".taskmaster.yml", "feature") == b"steps:\n  test: {run: pytest}\n"
    assert await forge.read_file(REPO, "docs/my notes.md", SHA) == b"\x00binary\xff"
    assert await forge.read_file(REPO, "missing.yml", "feature") is None

    first = fake.requests[0]
    assert first.path == f"/repos/{REPO}/contents/.taskmaster.yml"
    assert first.query == {"ref": "feature"}
    assert first.headers["accept"] == "application/vnd.github.raw+json"
    assert fake.requests[1].path == f"/repos/{REPO}/contents/docs/my%20notes.md"


async def test_user_permission_reads_the_role_including_maintain_and_triage(
    forge: GitHubForge, fake: FakeGitHub
) -> None:
    roles = {"alice": "admin", "bob": "maintain", "carol": "write", "dan": "triage", "erin": "read"}
    for login, role in roles.items():
        fake.state.permissions[(REPO, login)] = role

    found = {login: await forge.user_permission(REPO, login) for login in [*roles, "mallory"]}

    assert found == {
        "alice": Permission.ADMIN,
        "bob": Permission.MAINTAIN,
        "carol": Permission.WRITE,
        "dan": Permission.TRIAGE,
        "erin": Permission.READ,
        "mallory": Permission.NONE,
    }
    assert [login for login, permission in found.items() if permission.can_write] == ["alice", "bob", "carol"]
    assert Permission.READ < Permission.TRIAGE < Permission.WRITE
    assert fake.requests[0].path == f"/repos/{REPO}/collaborators/alice/permission"


async def test_a_rate_limit_longer_than_the_allowed_wait_raises_rate_limited_without_retrying(
    github: tuple[str, FakeGitHub],
) -> None:
    url, fake = github
    fake.secondary_rate_limit(retry_after=120)
    client = GitHubForge(token=PERSONAL_TOKEN, base_url=url, retry=FAST_RETRY, throttle=NO_THROTTLE)
    try:
        with pytest.raises(ForgeRateLimited) as caught:
            await client.set_commit_status(REPO, SHA, context="c", state=CommitState.SUCCESS)
    finally:
        await client.aclose()
    assert isinstance(caught.value, Unavailable)
    assert caught.value.extra["retry_after"] == 120
    assert "secondary rate limit" in caught.value.detail
    assert len(fake.requests) == 1


async def test_primary_rate_limit_waits_until_the_reset_time(forge: GitHubForge, fake: FakeGitHub) -> None:
    reset = int(time.time()) + 1
    fake.inject(
        403,
        {"message": "API rate limit exceeded for installation ID 77."},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )
    await forge.create_issue(REPO, title="t", body="b")
    attempts = fake.matching("POST", "/issues")
    assert len(attempts) == 2
    assert attempts[1].at - attempts[0].at < 2.5
    assert time.time() >= reset - 0.05


async def test_bad_credentials_raise_forge_auth_error_without_the_token(github: tuple[str, FakeGitHub]) -> None:
    url, fake = github
    wrong = "ghp_wrong0123456789abcdefghijklmnopqrstu"
    client = GitHubForge(token=wrong, base_url=url, retry=FAST_RETRY, throttle=NO_THROTTLE)
    try:
        with pytest.raises(ForgeAuthError) as caught:
            await client.set_commit_status(REPO, SHA, context="c", state=CommitState.SUCCESS)
    finally:
        await client.aclose()
    assert isinstance(caught.value, Unauthenticated)
    assert "Bad credentials" in caught.value.detail
    assert wrong not in caught.value.detail and wrong not in repr(caught.value.extra)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert len(fake.requests) == 1


async def test_writes_are_spaced_by_the_minimum_interval(github: tuple[str, FakeGitHub]) -> None:
    url, fake = github
    throttle = ThrottleSettings(max_concurrency=10, min_write_interval=0.3)
    client = GitHubForge(token=PERSONAL_TOKEN, base_url=url, retry=FAST_RETRY, throttle=throttle)
    try:
        await asyncio.gather(
            *(client.set_commit_status(REPO, SHA, context=f"c{i}", state=CommitState.PENDING) for i in range(3)),
            client.read_file(REPO, "absent", "main"),
        )
    finally:
        await client.aclose()
    writes = fake.matching("POST")
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(writes)]
    assert len(writes) == 3
    # Measured on arrival: a late first arrival (a new connection, a busy machine) may shorten the first gap.
    assert all(gap >= 0.15 for gap in gaps), gaps
    assert writes[-1].at - writes[0].at >= 0.45
    # The read did not queue behind the writes.
    assert fake.matching("GET")[0].at < writes[-1].at


async def test_app_mode_signs_a_jwt_gets_one_installation_token_and_uses_it(
    github: tuple[str, FakeGitHub], app_key: tuple[str, str]
) -> None:
    url, fake = github
    private, public = app_key
    fake.app_id, fake.app_public_key, fake.installations = 4242, public, {REPO: 77}
    client = app_forge(url, private)
    try:
        await client.set_commit_status(REPO, SHA, context="c", state=CommitState.RUNNING)
        await client.create_check_run(REPO, CheckRunSpec(name="lint", head_sha=SHA))
        await client.upsert_comment(REPO, 4, marker="m", body="hello")
        await client.user_permission(REPO, "nobody")
    finally:
        await client.aclose()

    lookup = fake.matching("GET", f"/repos/{REPO}/installation")
    assert len(lookup) == 1
    assert lookup[0].headers["authorization"].startswith("Bearer ey")
    token_requests = fake.matching("POST", "/app/installations/77/access_tokens")
    assert len(token_requests) == 1
    assert token_requests[0].headers["authorization"].startswith("Bearer ey")
    assert all(claims["iss"] == "4242" for claims in fake.state.jwt_claims)
    claims = fake.state.jwt_claims[0]
    assert claims["exp"] - claims["iat"] <= 600  # GitHub refuses JWTs valid for more than ten minutes
    (issued,) = fake.state.issued_tokens
    repo_calls = [
        r for r in fake.requests if r.path.startswith(f"/repos/{REPO}/") and not r.path.endswith("/installation")
    ]
    assert len(repo_calls) == 5
    assert {r.headers["authorization"] for r in repo_calls} == {f"token {issued}"}


async def test_concurrent_first_calls_request_one_installation_token(
    github: tuple[str, FakeGitHub], app_key: tuple[str, str]
) -> None:
    url, fake = github
    private, public = app_key
    fake.app_id, fake.app_public_key, fake.installations = 4242, public, {REPO: 77}
    client = app_forge(url, private, installation_id=77)
    try:
        await asyncio.gather(
            *(client.set_commit_status(REPO, SHA, context=f"c{i}", state=CommitState.PENDING) for i in range(5))
        )
    finally:
        await client.aclose()
    assert fake.token_requests() == 1
    assert fake.matching("GET", "/installation") == []  # the installation was given
    assert len(fake.state.statuses) == 5


@pytest.mark.slow
async def test_an_installation_token_is_requested_again_once_it_nears_expiry(
    github: tuple[str, FakeGitHub], app_key: tuple[str, str]
) -> None:
    url, fake = github
    private, public = app_key
    fake.app_id, fake.app_public_key, fake.installations = 4242, public, {REPO: 77}
    # githubkit keeps a token until one minute before it expires: this one is kept for one to two seconds.
    fake.token_lifetime = 62
    client = app_forge(url, private, installation_id=77)
    try:
        await client.set_commit_status(REPO, SHA, context="a", state=CommitState.PENDING)
        await client.set_commit_status(REPO, SHA, context="b", state=CommitState.PENDING)
        assert fake.token_requests() == 1
        await asyncio.sleep(2.2)
        await client.set_commit_status(REPO, SHA, context="c", state=CommitState.PENDING)
    finally:
        await client.aclose()
    assert fake.token_requests() == 2
    tokens = [r.headers["authorization"] for r in fake.matching("POST", "/statuses/")]
    assert tokens[0] == tokens[1] != tokens[2]


async def test_an_app_not_installed_on_the_repository_raises_not_found(
    github: tuple[str, FakeGitHub], app_key: tuple[str, str]
) -> None:
    url, fake = github
    private, public = app_key
    fake.app_id, fake.app_public_key, fake.installations = 4242, public, {"acme/other": 78}
    client = app_forge(url, private)
    try:
        with pytest.raises(ForgeNotFound, match="not installed on acme/api") as caught:
            await client.set_commit_status(REPO, SHA, context="c", state=CommitState.PENDING)
    finally:
        await client.aclose()
    assert isinstance(caught.value, NotFound)
    assert fake.token_requests() == 0


async def test_a_jwt_signed_with_another_key_is_refused_as_auth_error(
    github: tuple[str, FakeGitHub], app_key: tuple[str, str]
) -> None:
    url, fake = github
    _, public = app_key
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    fake.app_id, fake.app_public_key, fake.installations = 4242, public, {REPO: 77}
    client = app_forge(url, other_pem, installation_id=77)
    try:
        with pytest.raises(ForgeAuthError, match="JSON web token") as caught:
            await client.create_issue(REPO, title="t", body="b")
    finally:
        await client.aclose()
    assert "PRIVATE KEY" not in caught.value.detail
    assert fake.state.issued_tokens == {}


def test_only_as_a_github_app_does_a_client_write_check_runs_and_annotations(app_key: tuple[str, str]) -> None:
    as_app = app_forge("http://github.invalid", app_key[0]).capabilities
    assert as_app == ForgeCapabilities(check_runs=True, annotations=True, inline_review_comments=False)
    assert not GitHubForge(token=PERSONAL_TOKEN).capabilities.check_runs


def test_construction_checks_the_credentials_without_network() -> None:
    with pytest.raises(InvalidInput, match="either a token or a GitHub App"):
        GitHubForge()
    with pytest.raises(InvalidInput, match="either a token or a GitHub App"):
        GitHubForge(token="t", app_id=1, private_key="k")
    with pytest.raises(InvalidInput, match="not an unencrypted PEM private key") as caught:
        GitHubForge(app_id=1, private_key="-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----")
    assert "not a key" not in caught.value.detail
    with pytest.raises(InvalidInput, match="owner/name"):
        asyncio.run(GitHubForge(token="t").create_issue("no-slash", title="t", body="b"))


async def test_find_pull_request_asks_for_the_open_pr_of_the_branch_and_a_second_create_is_a_conflict(
    forge: GitHubForge, fake: FakeGitHub
) -> None:
    assert await forge.find_pull_request("acme/api", head="taskmaster/1-x", base="main") is None
    made = await forge.create_pull_request("acme/api", head="taskmaster/1-x", base="main", title="T", body="B")
    found = await forge.find_pull_request("acme/api", head="taskmaster/1-x", base="main")
    assert found == made
    assert await forge.find_pull_request("acme/api", head="taskmaster/2-y") is None
    lists = [r for r in fake.requests if r.method == "GET" and r.path == "/repos/acme/api/pulls"]
    assert [r.query for r in lists] == [
        {"state": "open", "head": "acme:taskmaster/1-x", "base": "main"},
        {"state": "open", "head": "acme:taskmaster/1-x", "base": "main"},
        {"state": "open", "head": "acme:taskmaster/2-y"},
    ]
    with pytest.raises(ForgeConflict, match="already exists"):
        await forge.create_pull_request("acme/api", head="taskmaster/1-x", base="main", title="T", body="B")
