"""GitLabForge (httpx) against a fake GitLab on loopback: encoded project ids, mapped status states, check runs as
statuses, notes edited in place across pages, permission lookup, retries on 429/5xx, and errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from taskmaster.core.errors import InvalidInput, Unauthenticated
from taskmaster.forges.base import (
    Annotation,
    CheckConclusion,
    CheckRunSpec,
    CheckStatus,
    CommitState,
    Forge,
    ForgeAuthError,
    ForgeConflict,
    ForgeError,
    ForgeNotFound,
    ForgeRateLimited,
    ForgeRejected,
    ForgeUnavailable,
    IssueRef,
    Permission,
    PullRequestRef,
    comment_marker,
)
from taskmaster.forges.gitlab.client import GitLabForge
from taskmaster.forges.throttle import RetryPolicy, ThrottleSettings
from tests.forges.fakes.gitlab import TOKEN, FakeGitLab, serve_gitlab

PROJECT = "acme/platform/api"
ENCODED = "acme%2Fplatform%2Fapi"
PROJECT_ID = 42
SHA = "89abcdef0123456789abcdef0123456789abcdef"
FAST_RETRY = RetryPolicy(max_retries=3, backoff_base=0.05, backoff_max=0.2, max_rate_limit_wait=5.0)
NO_THROTTLE = ThrottleSettings(max_concurrency=10, min_write_interval=0.0)


@pytest.fixture(scope="module")
def _gitlab_server() -> Iterator[tuple[str, FakeGitLab]]:
    with serve_gitlab() as server:
        yield server


@pytest.fixture
def gitlab(_gitlab_server: tuple[str, FakeGitLab]) -> tuple[str, FakeGitLab]:
    _gitlab_server[1].reset()
    return _gitlab_server


@pytest.fixture
def fake(gitlab: tuple[str, FakeGitLab]) -> FakeGitLab:
    return gitlab[1]


@pytest.fixture
async def forge(gitlab: tuple[str, FakeGitLab]) -> AsyncIterator[GitLabForge]:
    client = GitLabForge(token=TOKEN, base_url=gitlab[0], retry=FAST_RETRY, throttle=NO_THROTTLE)
    yield client
    await client.aclose()


def test_gitlab_forge_satisfies_the_forge_protocol(forge: GitLabForge) -> None:
    as_protocol: Forge = forge
    assert as_protocol.name == "gitlab"
    assert TOKEN not in repr(forge)


async def test_commit_states_map_to_gitlab_states_on_the_encoded_project_path(
    forge: GitLabForge, fake: FakeGitLab
) -> None:
    expected = {
        CommitState.PENDING: "pending",
        CommitState.RUNNING: "running",
        CommitState.SUCCESS: "success",
        CommitState.FAILURE: "failed",
        CommitState.ERROR: "failed",
        CommitState.CANCELED: "canceled",
        CommitState.SKIPPED: "skipped",
    }
    for state in CommitState:
        await forge.set_commit_status(
            PROJECT, SHA, context=f"taskmaster/{state}", state=state, description="d", target_url="https://t.example/1"
        )

    sent = fake.matching("POST")
    assert {r.path for r in sent} == {f"/api/v4/projects/{ENCODED}/statuses/{SHA}"}
    assert {r.json["name"]: r.json["state"] for r in sent} == {f"taskmaster/{s}": g for s, g in expected.items()}
    assert sent[0].json == {
        "state": "pending",
        "name": "taskmaster/pending",
        "description": "d",
        "target_url": "https://t.example/1",
    }
    assert all(r.headers["private-token"] == TOKEN for r in fake.requests)
    assert all("authorization" not in r.headers for r in fake.requests)


async def test_a_numeric_project_id_is_used_as_it_is(forge: GitLabForge, fake: FakeGitLab) -> None:
    await forge.set_commit_status(str(PROJECT_ID), SHA, context="c", state=CommitState.SUCCESS)
    assert fake.requests[0].path == f"/api/v4/projects/{PROJECT_ID}/statuses/{SHA}"
    assert fake.state.statuses[0]["project"] == PROJECT_ID


async def test_posting_the_state_a_status_already_has_is_not_an_error(forge: GitLabForge, fake: FakeGitLab) -> None:
    await forge.set_commit_status(PROJECT, SHA, context="c", state=CommitState.RUNNING)
    await forge.set_commit_status(PROJECT, SHA, context="c", state=CommitState.RUNNING)
    await forge.set_commit_status(PROJECT, SHA, context="c", state=CommitState.SUCCESS)

    assert [r.json["state"] for r in fake.matching("POST")] == ["running", "running", "success"]
    assert [s["status"] for s in fake.state.statuses] == ["running", "success"]


async def test_pipeline_check_runs_become_commit_statuses_named_after_each_check(
    forge: GitLabForge, fake: FakeGitLab
) -> None:
    lint = CheckRunSpec(name="lint", head_sha=SHA, status=CheckStatus.IN_PROGRESS, details_url="https://t.example/7")
    lint_id = await forge.create_check_run(PROJECT, lint)
    queued_id = await forge.create_check_run(PROJECT, CheckRunSpec(name="test", head_sha=SHA))
    await forge.update_check_run(
        PROJECT,
        lint_id,
        CheckRunSpec(
            name="lint",
            head_sha=SHA,
            status=CheckStatus.COMPLETED,
            conclusion=CheckConclusion.FAILURE,
            title="120 lint errors",
            summary="long markdown that GitLab statuses cannot show",
            annotations=tuple(Annotation("a.py", i + 1, i + 1, "bad") for i in range(120)),
            details_url="https://t.example/7",
        ),
    )
    await forge.update_check_run(
        PROJECT,
        queued_id,
        CheckRunSpec(
            name="test",
            head_sha=SHA,
            status=CheckStatus.COMPLETED,
            conclusion=CheckConclusion.NEUTRAL,
            summary="ok\nmore",
        ),
    )

    assert lint_id.isdigit() and lint_id != queued_id
    assert [r.json for r in fake.matching("POST")] == [
        {"state": "running", "name": "lint", "target_url": "https://t.example/7"},
        {"state": "pending", "name": "test"},
        {"state": "failed", "name": "lint", "description": "120 lint errors", "target_url": "https://t.example/7"},
        {"state": "success", "name": "test", "description": "ok"},
    ]


async def test_every_conclusion_maps_to_a_gitlab_state(forge: GitLabForge, fake: FakeGitLab) -> None:
    expected = {
        CheckConclusion.SUCCESS: "success",
        CheckConclusion.NEUTRAL: "success",
        CheckConclusion.FAILURE: "failed",
        CheckConclusion.TIMED_OUT: "failed",
        CheckConclusion.ACTION_REQUIRED: "failed",
        CheckConclusion.CANCELLED: "canceled",
        CheckConclusion.SKIPPED: "skipped",
    }
    for conclusion in CheckConclusion:
        spec = CheckRunSpec(name=f"c-{conclusion}", head_sha=SHA, status=CheckStatus.COMPLETED, conclusion=conclusion)
        await forge.create_check_run(PROJECT, spec)
    assert {r.json["name"]: r.json["state"] for r in fake.matching("POST")} == {
        f"c-{c}": state for c, state in expected.items()
    }


async def test_upsert_comment_creates_a_note_then_edits_it_in_place(forge: GitLabForge, fake: FakeGitLab) -> None:
    first = await forge.upsert_comment(PROJECT, 7, marker="pipeline", body="running")
    second = await forge.upsert_comment(PROJECT, 7, marker="pipeline", body="failed")

    assert first == second
    notes_path = f"/api/v4/projects/{ENCODED}/merge_requests/7/notes"
    writes = [r for r in fake.requests if r.method != "GET"]
    assert [(r.method, r.path) for r in writes] == [("POST", notes_path), ("PUT", f"{notes_path}/{first}")]
    assert writes[0].json == {"body": "<!-- taskmaster:pipeline -->\nrunning"}
    assert writes[1].json == {"body": "<!-- taskmaster:pipeline -->\nfailed"}
    notes = fake.notes_on(PROJECT_ID, 7)
    assert [n["body"] for n in notes] == ["<!-- taskmaster:pipeline -->\nfailed"]


async def test_upsert_comment_walks_x_next_page_and_skips_system_notes(forge: GitLabForge, fake: FakeGitLab) -> None:
    fake.page_size = 2
    for i in range(4):
        fake.add_note(PROJECT_ID, 9, f"review remark {i}")
    fake.add_note(PROJECT_ID, 9, f"{comment_marker('summary')}\nsystem copy", system=True)
    mine = fake.add_note(PROJECT_ID, 9, f"{comment_marker('summary')}\nold", author="taskmaster")

    found = await forge.upsert_comment(PROJECT, 9, marker="summary", body="new")

    assert found == str(mine)
    pages = fake.matching("GET", "/notes")
    assert [r.query["page"] for r in pages] == ["1", "2", "3"]
    assert pages[0].query == {"per_page": "100", "page": "1", "sort": "asc", "order_by": "created_at"}
    assert fake.matching("POST") == []
    assert fake.state.notes[mine]["body"] == f"{comment_marker('summary')}\nnew"


async def test_concurrent_upserts_of_one_marker_make_a_single_note(forge: GitLabForge, fake: FakeGitLab) -> None:
    ids = await asyncio.gather(*(forge.upsert_comment(PROJECT, 3, marker="m", body=f"v{i}") for i in range(4)))
    assert len(set(ids)) == 1
    assert len(fake.notes_on(PROJECT_ID, 3)) == 1


async def test_create_branch_merge_request_and_issue(forge: GitLabForge, fake: FakeGitLab) -> None:
    await forge.create_branch(PROJECT, "taskmaster/task-3", SHA)
    mr = await forge.create_pull_request(
        PROJECT, head="taskmaster/task-3", base="main", title="Task 3", body="Implements task 3", draft=True
    )
    issue = await forge.create_issue(PROJECT, title="Needs a person", body="No fix found.", labels=["taskmaster", "ci"])

    assert fake.matching("POST", "/repository/branches")[0].json == {"branch": "taskmaster/task-3", "ref": SHA}
    assert fake.matching("POST", "/merge_requests")[0].json == {
        "source_branch": "taskmaster/task-3",
        "target_branch": "main",
        "title": "Draft: Task 3",
        "description": "Implements task 3",
    }
    assert fake.matching("POST", "/issues")[0].json == {
        "title": "Needs a person",
        "description": "No fix found.",
        "labels": "taskmaster,ci",
    }
    assert mr == PullRequestRef(number=1, url=mr.url) and mr.url.endswith(f"/{PROJECT}/-/merge_requests/1")
    assert issue == IssueRef(number=1, url=issue.url) and issue.url.endswith(f"/{PROJECT}/-/issues/1")


async def test_an_existing_branch_or_open_merge_request_raises_forge_conflict(forge: GitLabForge) -> None:
    await forge.create_branch(PROJECT, "feature", SHA)
    with pytest.raises(ForgeConflict, match="Branch already exists"):
        await forge.create_branch(PROJECT, "feature", SHA)
    await forge.create_pull_request(PROJECT, head="feature", base="main", title="t", body="b")
    with pytest.raises(ForgeConflict, match="Another open merge request already exists"):
        await forge.create_pull_request(PROJECT, head="feature", base="main", title="t", body="b")


async def test_read_file_encodes_the_whole_path_and_returns_none_when_absent(
    forge: GitLabForge, fake: FakeGitLab
) -> None:
    fake.state.files[(PROJECT_ID, "feature", "ci/.taskmaster.yml")] = b"steps: {}\n"

    assert await forge.read_file(PROJECT, "ci/.taskmaster.yml", "feature") == b"steps: {}\n"
    assert await forge.read_file(PROJECT, "ci/absent.yml", "feature") is None

    first = fake.requests[0]
    assert first.path == f"/api/v4/projects/{ENCODED}/repository/files/ci%2F.taskmaster.yml/raw"
    assert first.query == {"ref": "feature"}


async def test_user_permission_resolves_the_username_then_maps_access_levels(
    forge: GitLabForge, fake: FakeGitLab
) -> None:
    levels = {"owner": 50, "maintainer": 40, "developer": 30, "reporter": 20, "guest": 10, "minimal": 5}
    for number, (login, level) in enumerate(levels.items(), start=100):
        fake.state.users[login] = number
        fake.state.members[(PROJECT_ID, number)] = level
    fake.state.users["outsider"] = 200

    found = {login: await forge.user_permission(PROJECT, login) for login in [*levels, "outsider", "ghost"]}

    assert found == {
        "owner": Permission.ADMIN,
        "maintainer": Permission.MAINTAIN,
        "developer": Permission.WRITE,
        "reporter": Permission.TRIAGE,
        "guest": Permission.READ,
        "minimal": Permission.NONE,
        "outsider": Permission.NONE,
        "ghost": Permission.NONE,
    }
    lookups = fake.requests[:2]
    assert (lookups[0].path, lookups[0].query) == ("/api/v4/users", {"username": "owner"})
    assert lookups[1].path == f"/api/v4/projects/{ENCODED}/members/all/100"


async def test_bearer_auth_sends_an_authorization_header(gitlab: tuple[str, FakeGitLab]) -> None:
    url, fake = gitlab
    client = GitLabForge(token=TOKEN, base_url=f"{url}/api/v4/", auth_header="bearer", throttle=NO_THROTTLE)
    try:
        await client.set_commit_status(PROJECT, SHA, context="c", state=CommitState.PENDING)
    finally:
        await client.aclose()
    assert fake.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert "private-token" not in fake.requests[0].headers
    assert fake.requests[0].path.startswith("/api/v4/projects/")


async def test_a_429_is_waited_out_for_retry_after_then_retried(forge: GitLabForge, fake: FakeGitLab) -> None:
    fake.rate_limited(retry_after=1, method="POST")

    await forge.create_issue(PROJECT, title="t", body="b")

    attempts = fake.matching("POST", "/issues")
    assert len(attempts) == 2
    assert attempts[0].json == attempts[1].json
    assert 0.9 <= attempts[1].at - attempts[0].at < 3.0
    assert len(fake.state.issues) == 1


async def test_a_429_asking_for_more_than_the_allowed_wait_raises_rate_limited(
    forge: GitLabForge, fake: FakeGitLab
) -> None:
    fake.rate_limited(retry_after=600)
    with pytest.raises(ForgeRateLimited, match="HTTP 429: Retry later") as caught:
        await forge.set_commit_status(PROJECT, SHA, context="c", state=CommitState.PENDING)
    assert 590 <= caught.value.extra["retry_after"] <= 600
    assert len(fake.requests) == 1


async def test_server_errors_are_retried_with_backoff_then_succeed(gitlab: tuple[str, FakeGitLab]) -> None:
    url, fake = gitlab
    fake.server_error(status=502, times=2)
    client = GitLabForge(
        token=TOKEN, base_url=url, retry=RetryPolicy(max_retries=3, backoff_base=0.2), throttle=NO_THROTTLE
    )
    try:
        note_id = await client.upsert_comment(PROJECT, 1, marker="m", body="b")
    finally:
        await client.aclose()
    gets = fake.matching("GET", "/notes")
    assert len(gets) == 3
    assert 0.09 <= gets[1].at - gets[0].at < 1.0
    assert 0.19 <= gets[2].at - gets[1].at < 1.5
    assert fake.state.notes[int(note_id)]["body"].endswith("\nb")


async def test_server_errors_past_the_retries_raise_forge_unavailable(forge: GitLabForge, fake: FakeGitLab) -> None:
    fake.server_error(status=500, times=10)
    with pytest.raises(ForgeUnavailable, match="HTTP 500") as caught:
        await forge.create_branch(PROJECT, "b", SHA)
    assert caught.value.extra == {"forge": "GitLab", "status": 500}
    assert len(fake.requests) == FAST_RETRY.max_retries + 1


async def test_a_wrong_token_raises_forge_auth_error_without_the_token(gitlab: tuple[str, FakeGitLab]) -> None:
    url, fake = gitlab
    wrong = "glpat-wrong0123456789abcd"
    client = GitLabForge(token=wrong, base_url=url, retry=FAST_RETRY, throttle=NO_THROTTLE)
    try:
        with pytest.raises(ForgeAuthError, match="401 Unauthorized") as caught:
            await client.create_issue(PROJECT, title="t", body="b")
    finally:
        await client.aclose()
    assert isinstance(caught.value, Unauthenticated)
    assert wrong not in caught.value.detail
    assert len(fake.requests) == 1


async def test_unknown_project_and_invalid_requests_raise_their_own_errors(forge: GitLabForge) -> None:
    with pytest.raises(ForgeNotFound, match="404 Project Not Found"):
        await forge.create_issue("acme/absent", title="t", body="b")
    with pytest.raises(ForgeRejected, match="HTTP 400: note can't be blank"):
        # GitLab's field errors ({"message": {"note": [...]}}) rendered as one line.
        await forge._request("POST", f"projects/{ENCODED}/merge_requests/1/notes", "comment", json={"body": ""})
    with pytest.raises(InvalidInput):
        await forge.create_issue("", title="t", body="b")


async def test_an_unreachable_server_raises_forge_unavailable() -> None:
    from tests.support import free_port

    client = GitLabForge(
        token=TOKEN, base_url=f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(max_retries=1, backoff_base=0.01)
    )
    try:
        with pytest.raises(ForgeUnavailable, match="could not be reached"):
            await client.create_issue(PROJECT, title="t", body="b")
    finally:
        await client.aclose()


async def test_a_closed_forge_refuses_calls(forge: GitLabForge) -> None:
    await forge.aclose()
    with pytest.raises(ForgeError, match="closed"):
        await forge.create_issue(PROJECT, title="t", body="b")
