"""Every stored GitLab payload, old and new shapes, parses into the right ForgeEvent kind with the right key fields."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from taskmaster.forges.events import ZERO_SHA, EventKind, ForgeEvent, Provider, WebhookPayloadError
from taskmaster.forges.gitlab.webhooks import is_bot, parse
from tests.forges.fixtures import names, payload, payload_bytes

HEADERS = {
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "merge_request": "Merge Request Hook",
    "note": "Note Hook",
    "pipeline": "Pipeline Hook",
    "job": "Job Hook",
}
HELLO = {"repository": "gitlab-org/hello-world", "repository_id": 4861503, "sender": "sytses"}
MR1 = {
    "pull_request.number": 1,
    "pull_request.title": "update readme",
    "pull_request.url": "https://gitlab.com/gitlab-org/hello-world/merge_requests/1",
    "pull_request.head_ref": "feature",
    "pull_request.head_sha": "c4c79227ed610f1151f05bbc5be33b4f340d39c8",
    "pull_request.base_ref": "master",
    "pull_request.base_sha": None,
    "pull_request.draft": False,
    "pull_request.from_fork": False,
    **HELLO,
}

# One row per stored file: the kind, then attribute paths (dotted) and the values they must have.
EXPECTED: dict[str, tuple[EventKind, dict[str, Any]]] = {
    "gitlab/job/created_docs_example": (
        EventKind.IGNORED,
        {"repository": "gitlab-org/gitlab-test", "repository_id": 380, "sender": None},
    ),
    "gitlab/job/success": (EventKind.IGNORED, {"repository": None, "repository_id": 31537070, "sender": "jsmithy2"}),
    "gitlab/merge_request/close": (
        EventKind.PR_CLOSED,
        {**MR1, "action": "close", "pull_request.state": "closed", "pull_request.merged": False},
    ),
    "gitlab/merge_request/merge": (
        EventKind.PR_MERGED,
        {
            **MR1,
            "action": "merge",
            "pull_request.state": "merged",
            "pull_request.merged": True,
            "pull_request.merge_commit_sha": "78a76ee6b4992a6baf64c59fc4c44c7323d60438",
        },
    ),
    "gitlab/merge_request/open": (
        EventKind.PR_OPENED,
        {
            **MR1,
            "action": "open",
            "pull_request.state": "open",
            "pull_request.author": "sytses",
            "pull_request.author_is_bot": False,
        },
    ),
    "gitlab/merge_request/reopen": (EventKind.PR_REOPENED, {**MR1, "action": "reopen", "pull_request.state": "open"}),
    "gitlab/merge_request/update": (
        EventKind.PR_SYNCHRONIZED,
        {
            **MR1,
            "action": "update",
            "pull_request.previous_head_sha": "2ee77db7e47fecd07229e021ef89e5d46cd4f5dd",
            "pull_request.changed": ("labels",),
        },
    ),
    "gitlab/merge_request/update_marked_draft": (
        EventKind.PR_CONVERTED_TO_DRAFT,
        {
            "action": "update",
            "repository": "rathod.meetsatish/meet",
            "repository_id": 44067058,
            "sender": "rathod.meetsatish",
            "pull_request.number": 3,
            "pull_request.title": "Draft: Update README.md",
            "pull_request.draft": True,
            "pull_request.author": "rathod.meetsatish",
            "pull_request.head_ref": "main1234",
            "pull_request.head_sha": "ffd71529ecdfb41a530ee13f91b8fdd3e743c754",
            "pull_request.base_ref": "main",
            "pull_request.previous_head_sha": None,
        },
    ),
    "gitlab/note/merge_request_comment": (
        EventKind.COMMENT,
        {
            **HELLO,
            "comment.id": 50772616,
            "comment.body": "lgtm",
            "comment.author": "sytses",
            "comment.author_is_bot": False,
            "comment.on_pull_request": 1,
            "comment.inline": False,
            "pull_request.head_sha": "c4c79227ed610f1151f05bbc5be33b4f340d39c8",
        },
    ),
    "gitlab/note/merge_request_diff_note": (
        EventKind.COMMENT,
        {
            "comment.id": 50772639,
            "comment.body": "check spelling",
            "comment.inline": True,
            "comment.on_pull_request": 1,
        },
    ),
    "gitlab/note/merge_request_docs_example": (
        EventKind.COMMENT,
        {
            "action": "create",
            "repository": "gitlab-org/gitlab-test",
            "repository_id": 5,
            "comment.id": 1244,
            "comment.body": "This MR needs work.",
            "comment.author": "root",
            "comment.on_pull_request": 1,
            "pull_request.head_ref": "master",
            "pull_request.base_ref": "markdown",
            "pull_request.head_sha": "562e173be03b8ff2efb05345d12df18815438a4b",
        },
    ),
    "gitlab/pipeline/docs_example": (
        EventKind.IGNORED,
        {"repository": "gitlab-org/gitlab-test", "repository_id": 1, "sender": "root"},
    ),
    "gitlab/pipeline/go_gitlab_example": (EventKind.IGNORED, {"sender": "user1"}),
    "gitlab/push/branch_create": (
        EventKind.PUSH_BRANCH,
        {
            **HELLO,
            "push.ref": "refs/heads/feature",
            "push.created": True,
            "push.deleted": False,
            "push.before": ZERO_SHA,
            "push.head_sha": "c4c79227ed610f1151f05bbc5be33b4f340d39c8",
            "push.commits_count": 1,
        },
    ),
    "gitlab/push/branch_delete": (
        EventKind.BRANCH_DELETED,
        {"push.ref": "refs/heads/feature", "push.deleted": True, "push.head_sha": None, "push.commits_count": 0},
    ),
    "gitlab/push/docs_example": (
        EventKind.PUSH_BRANCH,
        {
            "repository": "mike/diaspora",
            "repository_id": 15,
            "sender": "jsmith",
            "push.created": False,
            "push.commits_count": 4,
            "push.head_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        },
    ),
    "gitlab/push/push": (
        EventKind.PUSH_BRANCH,
        {
            **HELLO,
            "push.ref": "refs/heads/master",
            "push.name": "master",
            "push.before": "9217710ce8c7e1eae7a5d1c45f6e43e1c769f866",
            "push.after": "2adc9465c4edfc33834e173fe89436a7cb899a1d",
            "push.head_sha": "2adc9465c4edfc33834e173fe89436a7cb899a1d",
            "push.commits_count": 1,
        },
    ),
    "gitlab/tag_push/docs_example": (
        EventKind.PUSH_TAG,
        {"repository": "jsmith/example", "repository_id": 1, "sender": None, "push.created": True},
    ),
    "gitlab/tag_push/tag_create": (
        EventKind.PUSH_TAG,
        {
            **HELLO,
            "push.ref": "refs/tags/v1.0.0",
            "push.name": "v1.0.0",
            "push.is_tag": True,
            "push.head_sha": "2adc9465c4edfc33834e173fe89436a7cb899a1d",
        },
    ),
    "gitlab/tag_push/tag_delete": (
        EventKind.TAG_DELETED,
        {"push.ref": "refs/tags/v1.0.0", "push.deleted": True, "push.head_sha": None},
    ),
}


def attribute(event: ForgeEvent, path: str) -> Any:
    value: Any = event
    for part in path.split("."):
        value = getattr(value, part)
    return value


def header_for(name: str) -> str:
    return HEADERS[name.split("/")[1]]


def test_every_stored_gitlab_payload_has_an_expected_row() -> None:
    assert sorted(EXPECTED) == names("gitlab")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gitlab_payload_parses_to_expected_kind_and_fields(name: str) -> None:
    kind, fields = EXPECTED[name]
    event = parse(header_for(name), payload_bytes(name))
    assert event.provider is Provider.GITLAB
    assert event.kind is kind
    assert event.event == header_for(name)
    assert {path: attribute(event, path) for path in fields} == fields


@pytest.mark.parametrize("name", names("gitlab"))
def test_decoded_payload_parses_like_raw_bytes(name: str) -> None:
    assert parse(header_for(name), payload(name)) == parse(header_for(name), payload_bytes(name))


def marked_draft_reversed() -> dict[str, Any]:
    data = copy.deepcopy(payload("gitlab/merge_request/update_marked_draft"))
    data["object_attributes"]["draft"] = False
    data["object_attributes"]["work_in_progress"] = False
    data["object_attributes"]["title"] = "Update README.md"
    data["changes"]["draft"] = {"previous": True, "current": False}
    data["changes"]["title"] = {"previous": "Draft: Update README.md", "current": "Update README.md"}
    return data


def test_draft_flag_turned_off_is_ready_for_review() -> None:
    event = parse("Merge Request Hook", marked_draft_reversed())
    assert event.kind is EventKind.PR_READY_FOR_REVIEW
    assert event.pull_request is not None and event.pull_request.draft is False


@pytest.mark.parametrize(
    ("previous", "current", "kind"),
    [
        ("update readme", "WIP: update readme", EventKind.PR_CONVERTED_TO_DRAFT),
        ("[Draft] update readme", "update readme", EventKind.PR_READY_FOR_REVIEW),
        ("update readme", "update the readme", EventKind.PR_UPDATED),
    ],
)
def test_old_shape_title_prefix_change_decides_draft_kind(previous: str, current: str, kind: EventKind) -> None:
    data = copy.deepcopy(payload("gitlab/merge_request/open"))
    data["object_attributes"].update(action="update", title=current)
    data["changes"] = {"title": {"previous": previous, "current": current}}
    event = parse("Merge Request Hook", data)
    assert event.kind is kind
    assert event.pull_request is not None
    assert event.pull_request.draft is (kind is EventKind.PR_CONVERTED_TO_DRAFT)


def test_update_without_new_commits_or_draft_change_is_an_update() -> None:
    data = copy.deepcopy(payload("gitlab/merge_request/update"))
    del data["object_attributes"]["oldrev"]
    event = parse("Merge Request Hook", data)
    assert (event.kind, event.action) == (EventKind.PR_UPDATED, "update")
    assert event.pull_request is not None and event.pull_request.previous_head_sha is None


def test_approval_action_is_an_update_with_raw_action_kept() -> None:
    data = copy.deepcopy(payload("gitlab/merge_request/open"))
    data["object_attributes"]["action"] = "approved"
    event = parse("Merge Request Hook", data)
    assert (event.kind, event.action) == (EventKind.PR_UPDATED, "approved")


def test_merge_request_from_fork_is_flagged() -> None:
    data = copy.deepcopy(payload("gitlab/merge_request/open"))
    data["object_attributes"]["source"]["path_with_namespace"] = "mallory/hello-world"
    event = parse("Merge Request Hook", data)
    assert event.pull_request is not None
    assert (event.pull_request.from_fork, event.pull_request.head_repository) == (True, "mallory/hello-world")


def test_note_on_an_issue_is_ignored_with_no_pull_request() -> None:
    data = copy.deepcopy(payload("gitlab/note/merge_request_comment"))
    data["object_attributes"]["noteable_type"] = "Issue"
    del data["merge_request"]
    data["issue"] = {"iid": 4, "title": "a bug"}
    event = parse("Note Hook", data)
    assert event.kind is EventKind.IGNORED
    assert event.comment is not None and event.comment.on_pull_request is None
    assert event.pull_request is None


def test_edited_note_is_ignored() -> None:
    data = copy.deepcopy(payload("gitlab/note/merge_request_docs_example"))
    data["object_attributes"]["action"] = "update"
    event = parse("Note Hook", data)
    assert (event.kind, event.action) == (EventKind.IGNORED, "update")


def test_confidential_note_hook_is_read_from_object_kind() -> None:
    event = parse("Confidential Note Hook", payload_bytes("gitlab/note/merge_request_comment"))
    assert event.kind is EventKind.COMMENT


def test_event_header_decides_when_body_has_no_object_kind() -> None:
    data = copy.deepcopy(payload("gitlab/push/push"))
    del data["object_kind"]
    assert parse("Push Hook", data).kind is EventKind.PUSH_BRANCH


def test_unknown_event_is_ignored_with_raw_action_kept() -> None:
    body = b'{"object_kind": "issue", "object_attributes": {"action": "open"}, "project": {"id": 3}}'
    event = parse("Issue Hook", body)
    assert (event.kind, event.event, event.action, event.repository_id) == (
        EventKind.IGNORED,
        "Issue Hook",
        "open",
        3,
    )


def test_merge_request_without_last_commit_names_the_missing_field() -> None:
    data = copy.deepcopy(payload("gitlab/merge_request/open"))
    del data["object_attributes"]["last_commit"]
    with pytest.raises(WebhookPayloadError) as caught:
        parse("Merge Request Hook", data)
    assert "object_attributes.last_commit" in caught.value.detail


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b""])
def test_body_that_is_not_a_json_object_raises_payload_error(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError, match="JSON"):
        parse("Push Hook", body)


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("project_123_bot", True),
        ("project_123_bot2", True),
        ("group_9_bot_4f1e2a", True),
        ("service_account_group_9_x", True),
        ("renovate[bot]", True),
        ("robot", False),
        ("sytses", False),
        (None, False),
    ],
)
def test_bot_detection_uses_gitlab_generated_usernames(username: str | None, expected: bool) -> None:
    assert is_bot(username) is expected


def test_comment_by_project_bot_is_flagged() -> None:
    data = copy.deepcopy(payload("gitlab/note/merge_request_comment"))
    data["user"]["username"] = "project_4861503_bot"
    event = parse("Note Hook", data)
    assert event.comment is not None and event.comment.author_is_bot is True
    assert event.sender_is_bot is True
