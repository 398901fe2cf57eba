"""The Forge contract: every forge client, against its fake forge, behaves the same way (comments kept in one
place, branches and pull requests opened, read, merged and closed, files read, limits waited out, retries, errors).

What is particular to one forge's wire format (paths, bodies, paging, App tokens) stays in test_client_<forge>.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from taskmaster.core.errors import InvalidInput, Unauthenticated, Unavailable
from taskmaster.forges.base import (
    Forge,
    ForgeAuthError,
    ForgeCapabilities,
    ForgeConflict,
    ForgeError,
    ForgeNotFound,
    ForgeRateLimited,
    ForgeRejected,
    ForgeUnavailable,
    PullRequestDetails,
    PullRequestLookup,
    PullRequestRef,
    ReviewComment,
    comment_marker,
)
from taskmaster.forges.throttle import RetryPolicy
from tests.forges.conftest import FAST_RETRY, ForgeUnderTest
from tests.support import free_port

SHA = "0123456789abcdef0123456789abcdef01234567"
HEAD_SHA = "a" * 40
"""The head commit both fakes give a new pull request."""


@pytest.fixture
async def forge(under_test: ForgeUnderTest) -> AsyncIterator[Forge]:
    client = under_test.client()
    yield client
    await client.aclose()


def test_a_client_is_a_forge_that_declares_what_it_can_show_and_hides_its_token(
    forge: Forge, under_test: ForgeUnderTest
) -> None:
    assert forge.name == under_test.name
    # Neither a token-based GitHub client nor GitLab can write check runs: they report with statuses; both review.
    assert forge.capabilities == ForgeCapabilities(check_runs=False, annotations=False, inline_review_comments=True)
    assert under_test.token not in repr(forge)


async def test_upsert_comment_creates_once_then_edits_the_same_comment_in_place(
    forge: Forge, under_test: ForgeUnderTest
) -> None:
    first = await forge.upsert_comment(under_test.repo, 12, marker="pipeline-summary", body="running")
    second = await forge.upsert_comment(under_test.repo, 12, marker="pipeline-summary", body="failed: lint")

    assert first == second
    assert under_test.comments(12) == [f"{comment_marker('pipeline-summary')}\nfailed: lint"]
    writes = [f"{r.method} {r.path}" for r in under_test.fake.requests if r.method != "GET"]
    assert writes == [path.format(repo=under_test.repo, number=12, id=first) for path in under_test.comment_paths]


async def test_concurrent_upserts_of_one_marker_make_a_single_comment(forge: Forge, under_test: ForgeUnderTest) -> None:
    ids = await asyncio.gather(*(forge.upsert_comment(under_test.repo, 8, marker="m", body=f"v{i}") for i in range(4)))
    assert len(set(ids)) == 1
    assert len(under_test.comments(8)) == 1


async def test_a_branch_then_a_pull_request_and_the_same_branch_again_is_a_conflict(
    forge: Forge, under_test: ForgeUnderTest
) -> None:
    await forge.create_branch(under_test.repo, "taskmaster/task-12", SHA)
    pull = await forge.create_pull_request(
        under_test.repo, head="taskmaster/task-12", base="main", title="Task 12", body="Implements task 12"
    )
    assert pull == PullRequestRef(number=1, url=pull.url) and pull.url.startswith(under_test.url)
    with pytest.raises(ForgeConflict, match="already exists"):
        await forge.create_branch(under_test.repo, "taskmaster/task-12", SHA)


async def test_a_pull_request_is_read_then_merged_at_its_head_then_read_as_merged(
    forge: Forge, under_test: ForgeUnderTest
) -> None:
    opened = await forge.create_pull_request(under_test.repo, head="feature", base="main", title="Add x", body="b")

    before = await forge.get_pull_request(under_test.repo, opened.number)
    merged_sha = await forge.merge_pull_request(under_test.repo, opened.number, sha=before.head_sha)
    after = await forge.get_pull_request(under_test.repo, opened.number)

    assert before == PullRequestDetails(
        number=opened.number, url=opened.url, title="Add x", state="open", draft=False, head_ref="feature",
        head_sha=HEAD_SHA, base_ref="main",
    )  # fmt: skip
    assert len(merged_sha) == 40 and after.state == "merged" and after.merge_commit_sha == merged_sha


async def test_a_review_posts_its_inline_comments_on_the_new_side_of_the_diff_at_the_commit(
    forge: Forge, under_test: ForgeUnderTest
) -> None:
    opened = await forge.create_pull_request(under_test.repo, head="feature", base="main", title="t", body="b")
    under_test.limit_diff(opened.number, {"src/app.py": {10, 11, 12, 13}, "README.md": {1}})
    comments = [
        ReviewComment(path="src/app.py", line=12, start_line=None, body="**major**: `print` left in"),
        ReviewComment(path="src/app.py", line=13, start_line=11, body="this loop never ends"),
    ]

    review_id = await forge.create_review(
        under_test.repo, opened.number, commit_sha=HEAD_SHA, body="2 findings", comments=comments
    )

    assert review_id
    body, sent = under_test.review_sent(opened.number)
    assert body == "2 findings"
    assert [(c["path"], c["line"], c["commit"]) for c in sent] == [
        ("src/app.py", 12, HEAD_SHA), ("src/app.py", 13, HEAD_SHA),
    ]  # fmt: skip
    assert sent[0]["body"] == "**major**: `print` left in" and "this loop never ends" in sent[1]["body"]
    if under_test.name == "github":
        (request,) = under_test.fake.matching("POST", f"/pulls/{opened.number}/reviews")
        assert request.json is not None and request.json["event"] == "COMMENT"
        assert request.json["comments"][1] == {
            "path": "src/app.py", "line": 13, "side": "RIGHT", "start_line": 11, "start_side": "RIGHT",
            "body": "this loop never ends",
        }  # fmt: skip
    else:
        # GitLab positions a discussion with the merge request's diff_refs; the range is said in the text.
        (first, second) = under_test.fake.matching("POST", "/discussions")
        assert first.json is not None and second.json is not None
        assert first.json["position"] == {
            "position_type": "text", "base_sha": "b" * 40, "start_sha": "b" * 40, "head_sha": HEAD_SHA,
            "old_path": "src/app.py", "new_path": "src/app.py", "new_line": 12,
        }  # fmt: skip
        assert second.json["body"].startswith("Lines 11–13:")


async def test_a_review_comment_outside_the_diff_is_refused_by_the_forge(
    forge: Forge, under_test: ForgeUnderTest
) -> None:
    opened = await forge.create_pull_request(under_test.repo, head="feature", base="main", title="t", body="b")
    under_test.limit_diff(opened.number, {"src/app.py": {10}})
    outside = [ReviewComment(path="src/app.py", line=99, start_line=None, body="not a changed line")]

    with pytest.raises(ForgeRejected, match=r"HTTP (400|422)"):
        await forge.create_review(under_test.repo, opened.number, commit_sha=HEAD_SHA, body="x", comments=outside)
    with pytest.raises(InvalidInput, match="start_line <= line"):
        ReviewComment(path="a.py", line=3, start_line=5, body="backwards")


async def test_a_squash_merge_asks_the_forge_to_squash(forge: Forge, under_test: ForgeUnderTest) -> None:
    opened = await forge.create_pull_request(under_test.repo, head="feature", base="main", title="t", body="b")
    merged_sha = await forge.merge_pull_request(under_test.repo, opened.number, squash=True)

    (sent,) = under_test.fake.matching("PUT", "/merge")
    assert sent.json == ({"merge_method": "squash"} if under_test.name == "github" else {"squash": True})
    assert (await forge.get_pull_request(under_test.repo, opened.number)).merge_commit_sha == merged_sha


async def test_a_merge_the_forge_refuses_is_a_conflict_and_changes_nothing(
    forge: Forge, under_test: ForgeUnderTest
) -> None:
    opened = await forge.create_pull_request(under_test.repo, head="feature", base="main", title="t", body="b")

    with pytest.raises(ForgeConflict):
        await forge.merge_pull_request(under_test.repo, opened.number, sha="b" * 40)  # the head moved on
    under_test.pull(opened.number)["mergeable"] = False
    with pytest.raises(ForgeConflict, match="405"):
        await forge.merge_pull_request(under_test.repo, opened.number)

    assert (await forge.get_pull_request(under_test.repo, opened.number)).state == "open"
    with pytest.raises(ForgeNotFound):
        await forge.get_pull_request(under_test.repo, 99)


async def test_a_pull_request_is_closed_without_merging_and_closing_again_is_no_error(
    forge: Forge, under_test: ForgeUnderTest
) -> None:
    opened = await forge.create_pull_request(under_test.repo, head="feature", base="main", title="t", body="b")

    await forge.close_pull_request(under_test.repo, opened.number)
    await forge.close_pull_request(under_test.repo, opened.number)

    closed = await forge.get_pull_request(under_test.repo, opened.number)
    assert (closed.state, closed.merge_commit_sha) == ("closed", None)
    with pytest.raises(ForgeConflict):
        await forge.merge_pull_request(under_test.repo, opened.number)


async def test_the_open_pull_request_of_a_branch_is_found_into_its_base_and_a_closed_one_is_not(
    forge: Forge, under_test: ForgeUnderTest
) -> None:
    assert isinstance(forge, PullRequestLookup)
    assert await forge.find_pull_request(under_test.repo, head="feature", base="main") is None
    opened = await forge.create_pull_request(under_test.repo, head="feature", base="main", title="t", body="b")

    assert await forge.find_pull_request(under_test.repo, head="feature", base="main") == opened
    assert await forge.find_pull_request(under_test.repo, head="feature") == opened
    assert await forge.find_pull_request(under_test.repo, head="feature", base="release") is None
    assert await forge.find_pull_request(under_test.repo, head="other", base="main") is None
    await forge.close_pull_request(under_test.repo, opened.number)
    assert await forge.find_pull_request(under_test.repo, head="feature", base="main") is None


async def test_read_file_returns_the_bytes_and_none_when_absent(forge: Forge, under_test: ForgeUnderTest) -> None:
    under_test.put_file("feature", "ci/.taskmaster.yml", b"steps: {}\n\x00\xff")

    assert await forge.read_file(under_test.repo, "ci/.taskmaster.yml", "feature") == b"steps: {}\n\x00\xff"
    assert await forge.read_file(under_test.repo, "ci/absent.yml", "feature") is None


async def test_a_rate_limit_is_waited_out_for_retry_after_then_the_request_is_sent_again(
    forge: Forge, under_test: ForgeUnderTest
) -> None:
    under_test.rate_limit(retry_after=1, method="POST")

    await forge.create_issue(under_test.repo, title="t", body="b")

    attempts = under_test.fake.matching("POST", "/issues")
    assert len(attempts) == 2 and attempts[0].json == attempts[1].json
    assert 0.9 <= attempts[1].at - attempts[0].at < 3.0
    assert len(under_test.issues()) == 1


async def test_a_rate_limit_longer_than_the_allowed_wait_raises_rate_limited_without_retrying(
    forge: Forge, under_test: ForgeUnderTest
) -> None:
    under_test.rate_limit(retry_after=600)
    with pytest.raises(ForgeRateLimited) as caught:
        await forge.create_issue(under_test.repo, title="t", body="b")
    assert isinstance(caught.value, Unavailable)
    assert 590 <= float(caught.value.extra["retry_after"]) <= 600  # type: ignore[arg-type]
    assert len(under_test.fake.requests) == 1 and under_test.issues() == []


async def test_server_errors_are_retried_with_backoff_then_succeed(under_test: ForgeUnderTest) -> None:
    under_test.fake.server_error(status=502, times=2)
    client = under_test.client(retry=RetryPolicy(max_retries=3, backoff_base=0.2, backoff_max=1.0))
    try:
        await client.create_issue(under_test.repo, title="t", body="b")
    finally:
        await client.aclose()

    attempts = under_test.fake.matching("POST", "/issues")
    assert len(attempts) == 3
    # Backoff is base·2^n with the upper half jittered: 0.1–0.2 s, then 0.2–0.4 s.
    assert 0.09 <= attempts[1].at - attempts[0].at < 1.0
    assert 0.19 <= attempts[2].at - attempts[1].at < 1.5
    assert len(under_test.issues()) == 1


async def test_server_errors_past_the_retries_raise_forge_unavailable(forge: Forge, under_test: ForgeUnderTest) -> None:
    under_test.fake.server_error(status=503, times=10)
    with pytest.raises(ForgeUnavailable, match="HTTP 503") as caught:
        await forge.create_branch(under_test.repo, "b", SHA)
    assert caught.value.extra == {"forge": under_test.display, "status": 503}
    assert len(under_test.fake.requests) == FAST_RETRY.max_retries + 1


async def test_a_wrong_token_raises_forge_auth_error_without_the_token(under_test: ForgeUnderTest) -> None:
    client = under_test.client(token=under_test.wrong_token)
    try:
        with pytest.raises(ForgeAuthError) as caught:
            await client.create_issue(under_test.repo, title="t", body="b")
    finally:
        await client.aclose()
    assert isinstance(caught.value, Unauthenticated)
    assert under_test.wrong_token not in caught.value.detail
    assert under_test.wrong_token not in repr(caught.value.extra)
    assert len(under_test.fake.requests) == 1


async def test_an_unreachable_server_raises_forge_unavailable(under_test: ForgeUnderTest) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    client = under_test.client(url=nowhere, retry=RetryPolicy(max_retries=1, backoff_base=0.01))
    try:
        with pytest.raises(ForgeUnavailable, match="could not be reached"):
            await client.read_file(under_test.repo, "x", "main")
    finally:
        await client.aclose()


async def test_a_closed_forge_refuses_calls(forge: Forge, under_test: ForgeUnderTest) -> None:
    await forge.aclose()
    with pytest.raises(ForgeError, match="closed"):
        await forge.create_issue(under_test.repo, title="t", body="b")
