"""GitLabForge (httpx) against a fake GitLab on loopback: encoded project ids, mapped status states, check runs as
statuses, notes edited in place across pages, permission lookup, retries on 429/5xx, and errors.
"""

from __future__ import annotations

import pytest

from taskmaster.core.errors import InvalidInput
from taskmaster.forges.base import (
    CheckRunSpec,
    CheckStatus,
    CommitState,
    ForgeConflict,
    ForgeNotFound,
    ForgeRejected,
    IssueRef,
    Permission,
    PullRequestRef,
    ReviewComment,
    comment_marker,
)
from taskmaster.forges.gitlab.client import GitLabForge
from tests.forges.conftest import NO_THROTTLE
from tests.forges.fakes.gitlab import TOKEN, FakeGitLab

PROJECT = "acme/platform/api"
ENCODED = "acme%2Fplatform%2Fapi"
PROJECT_ID = 42
SHA = "89abcdef0123456789abcdef0123456789abcdef"


FORGE = "gitlab"
"""Which forge the `fake` and `forge` fixtures (conftest.py) serve."""


async def test_gitlab_has_no_check_runs_so_writing_one_is_refused_and_nothing_is_sent(
    forge: GitLabForge, fake: FakeGitLab
) -> None:
    assert not forge.capabilities.check_runs and not forge.capabilities.annotations
    spec = CheckRunSpec(name="lint", head_sha=SHA, status=CheckStatus.IN_PROGRESS)
    with pytest.raises(ForgeRejected, match="no check runs"):
        await forge.create_check_run(PROJECT, spec)
    with pytest.raises(ForgeRejected, match="no check runs"):
        await forge.update_check_run(PROJECT, "1", spec)
    assert fake.requests == []


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


async def test_find_pull_request_asks_for_the_open_merge_requests_between_the_branches(
    forge: GitLabForge, fake: FakeGitLab
) -> None:
    assert await forge.find_pull_request(PROJECT, head="feature", base="main") is None
    made = await forge.create_pull_request(PROJECT, head="feature", base="main", title="t", body="b")
    fake.add_merge_request(PROJECT_ID, source_branch="feature", target_branch="release", title="to release")

    assert await forge.find_pull_request(PROJECT, head="feature", base="main") == made
    to_release = await forge.find_pull_request(PROJECT, head="feature", base="release")
    assert to_release is not None and to_release.number == 2 and to_release.url.endswith("/-/merge_requests/2")
    assert await forge.find_pull_request(PROJECT, head="other") is None

    lists = fake.matching("GET", f"/api/v4/projects/{ENCODED}/merge_requests")
    page = {"state": "opened", "per_page": "100", "page": "1"}
    assert [r.query for r in lists] == [
        {"source_branch": "feature", "target_branch": "main", **page},
        {"source_branch": "feature", "target_branch": "main", **page},
        {"source_branch": "feature", "target_branch": "release", **page},
        {"source_branch": "other", **page},
    ]
    assert all(r.headers["private-token"] == TOKEN for r in lists)


async def test_a_closed_merge_request_is_not_found_and_a_new_one_may_be_opened_for_the_branch(
    forge: GitLabForge, fake: FakeGitLab
) -> None:
    first = await forge.create_pull_request(PROJECT, head="feature", base="main", title="t", body="b")
    await forge.close_pull_request(PROJECT, first.number)
    assert await forge.find_pull_request(PROJECT, head="feature", base="main") is None

    second = await forge.create_pull_request(PROJECT, head="feature", base="main", title="t", body="b")
    assert second.number == 2
    assert await forge.find_pull_request(PROJECT, head="feature", base="main") == second


async def test_find_pull_request_leaves_out_merge_requests_from_forks_across_pages(
    forge: GitLabForge, fake: FakeGitLab
) -> None:
    # Ours is the oldest; three newer ones come from forks with a branch of the same name and are listed first.
    ours = fake.add_merge_request(PROJECT_ID, source_branch="feature", target_branch="main", title="ours")
    for fork in (77, 78, 79):
        fake.add_merge_request(PROJECT_ID, source_project=fork, source_branch="feature", target_branch="main")
    fake.page_size = 2

    found = await forge.find_pull_request(PROJECT, head="feature", base="main")

    assert found is not None and found.number == ours["iid"] == 1
    assert [r.query["page"] for r in fake.matching("GET", "/merge_requests")] == ["1", "2"]


async def test_find_pull_request_errors_are_the_forges(forge: GitLabForge, fake: FakeGitLab) -> None:
    with pytest.raises(ForgeNotFound, match="find the merge request of 'feature' on acme/absent: HTTP 404"):
        await forge.find_pull_request("acme/absent", head="feature")
    fake.server_error(status=503, times=1, method="GET", path="/merge_requests")
    assert await forge.find_pull_request(PROJECT, head="feature") is None
    assert len(fake.matching("GET", "/merge_requests")) == 3


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


async def test_unknown_project_and_invalid_requests_raise_their_own_errors(forge: GitLabForge) -> None:
    with pytest.raises(ForgeNotFound, match="404 Project Not Found"):
        await forge.create_issue("acme/absent", title="t", body="b")
    with pytest.raises(ForgeRejected, match="HTTP 400: note can't be blank"):
        # GitLab's field errors ({"message": {"note": [...]}}) rendered as one line.
        await forge._request("POST", f"projects/{ENCODED}/merge_requests/1/notes", "comment", json={"body": ""})
    with pytest.raises(InvalidInput):
        await forge.create_issue("", title="t", body="b")


async def test_a_review_of_an_earlier_push_is_positioned_with_that_version_of_the_diff(
    forge: GitLabForge, fake: FakeGitLab
) -> None:
    opened = await forge.create_pull_request(PROJECT, head="feature", base="main", title="t", body="b")
    fake.push(PROJECT_ID, opened.number, "c" * 40)  # the review was computed for the first head, "a" * 40
    comment = ReviewComment(path="app.py", line=3, start_line=None, body="nit")

    note_id = await forge.create_review(PROJECT, opened.number, commit_sha="a" * 40, body="", comments=[comment])

    (discussion,) = fake.state.discussions
    assert discussion["position"]["head_sha"] == "a" * 40 and note_id == discussion["id"]
    assert [r.path for r in fake.requests if r.method == "GET"] == [
        f"/api/v4/projects/{ENCODED}/merge_requests/{opened.number}",
        f"/api/v4/projects/{ENCODED}/merge_requests/{opened.number}/versions",
    ]
    with pytest.raises(ForgeRejected, match="not a version"):
        await forge.create_review(PROJECT, opened.number, commit_sha="d" * 40, body="x", comments=[comment])
    with pytest.raises(InvalidInput, match="needs a body or at least one comment"):
        await forge.create_review(PROJECT, opened.number, commit_sha="c" * 40, body="", comments=[])
