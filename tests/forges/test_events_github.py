"""Every stored GitHub payload parses into the right ForgeEvent kind with the right key fields."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from taskmaster.forges.events import ZERO_SHA, DeliveryIdentity, EventKind, ForgeEvent, Provider, WebhookPayloadError
from taskmaster.forges.github.webhooks import is_bot, parse
from tests.forges.fixtures import names, payload, payload_bytes

HELLO = {"repository": "Codertocat/Hello-World", "repository_id": 186853002}
PR2 = {
    "pull_request.number": 2,
    "pull_request.title": "Update the README with new information.",
    "pull_request.url": "https://github.com/Codertocat/Hello-World/pull/2",
    "pull_request.head_ref": "changes",
    "pull_request.head_sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
    "pull_request.base_ref": "master",
    "pull_request.base_sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
    "pull_request.author": "Codertocat",
    "pull_request.author_is_bot": False,
    "pull_request.from_fork": False,
    "pull_request.draft": False,
    **HELLO,
}

# One row per stored file: the kind, then attribute paths (dotted) and the values they must have.
EXPECTED: dict[str, tuple[EventKind, dict[str, Any]]] = {
    "github/check_run/completed": (
        EventKind.IGNORED,
        {
            "action": "completed",
            "check.kind": "check_run",
            "check.id": 128620228,
            "check.name": "Octocoders-linter",
            "check.head_sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            "check.pull_requests": (2,),
            **HELLO,
        },
    ),
    "github/check_run/created": (EventKind.IGNORED, {"action": "created", "check.id": 128620228, **HELLO}),
    "github/check_run/requested_action": (
        EventKind.CHECK_REQUESTED_ACTION,
        {
            "repository": "electron/electron",
            "installation_id": 690857,
            "check.id": 1494503112,
            "check.name": "API Review",
            "check.app_id": 25811,
            "check.requested_action": "lgtm|26764",
            "check.pull_requests": (26764,),
            "sender": "codebytere",
        },
    ),
    "github/check_run/rerequested": (
        EventKind.CHECK_RERUN_REQUESTED,
        {
            "repository": "github/hello-world",
            "repository_id": 526,
            "installation_id": 1,
            "check.kind": "check_run",
            "check.id": 4,
            "check.name": "randscape",
            "check.head_sha": "d6fde92930d4715a2b49857d24b940956b26d2d3",
            "check.head_branch": "master",
            "check.app_id": 2,
        },
    ),
    "github/check_suite/completed": (
        EventKind.IGNORED,
        {"action": "completed", "check.kind": "check_suite", "check.id": 118578147, "check.name": None, **HELLO},
    ),
    "github/check_suite/requested": (
        EventKind.IGNORED,
        {
            "action": "requested",
            "check.id": 118578174,
            "check.head_sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
            "installation_id": 957387,
        },
    ),
    "github/check_suite/rerequested": (
        EventKind.CHECK_RERUN_REQUESTED,
        {
            "check.kind": "check_suite",
            "check.id": 118578147,
            "check.head_sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            "check.head_branch": "changes",
            "check.app_id": 29310,
            "installation_id": 957387,
            "sender": "octocoders-linter[bot]",
            "sender_is_bot": True,
        },
    ),
    "github/installation/created": (
        EventKind.INSTALLATION,
        {"action": "created", "installation_id": 957387, "repository": None, "sender": "Codertocat"},
    ),
    "github/issue_comment/created": (
        EventKind.IGNORED,
        {
            "comment.on_pull_request": None,
            "comment.author": "Codertocat",
            "comment.body": "You are totally right! I'll get this fixed right away.",
            **HELLO,
        },
    ),
    "github/issue_comment/created_on_pull_request": (
        EventKind.COMMENT,
        {
            "repository": "chhsia0/knative-route-demo",
            "comment.id": 546616131,
            "comment.body": "/build",
            "comment.author": "chhsia0",
            "comment.author_is_bot": False,
            "comment.on_pull_request": 3,
        },
    ),
    "github/issues/opened": (EventKind.IGNORED, {"event": "issues", "action": "opened", **HELLO}),
    "github/ping/repository_hook": (
        EventKind.PING,
        {"repository": "Octocoders/Hello-World", "repository_id": 186853261, "action": None},
    ),
    "github/ping/with_app_id": (EventKind.PING, {"repository": "Octocoders/Hello-World"}),
    "github/pull_request/closed": (
        EventKind.PR_CLOSED,
        {
            **PR2,
            "pull_request.state": "closed",
            "pull_request.merged": False,
            "pull_request.merge_commit_sha": None,
            "installation_id": 1,
        },
    ),
    "github/pull_request/closed_merged": (
        EventKind.PR_MERGED,
        {
            "repository": "robvanderleek/create-issue-branch",
            "installation_id": 1301612,
            "pull_request.number": 117,
            "pull_request.state": "merged",
            "pull_request.merged": True,
            "pull_request.merge_commit_sha": "5a47c3f3c22f54f37a3297f2f1c98d860fba4489",
            "pull_request.head_sha": "59a63ccd828afb5fc4739ad8d3176d5c36eaebf6",
            "pull_request.base_ref": "main",
        },
    ),
    "github/pull_request/edited": (
        EventKind.PR_UPDATED,
        {
            "action": "edited",
            "repository": "bradrydzewski/drone-test-go",
            "pull_request.number": 1,
            "pull_request.state": "open",
            "pull_request.changed": ("body",),
        },
    ),
    "github/pull_request/labeled": (EventKind.PR_UPDATED, {**PR2, "action": "labeled"}),
    "github/pull_request/opened": (
        EventKind.PR_OPENED,
        {**PR2, "pull_request.state": "open", "installation_id": 1, "sender": "Codertocat", "sender_is_bot": False},
    ),
    "github/pull_request/ready_for_review": (EventKind.PR_READY_FOR_REVIEW, PR2),
    "github/pull_request/synchronize": (
        EventKind.PR_SYNCHRONIZED,
        {**PR2, "pull_request.previous_head_sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"},
    ),
    "github/push/branch_created": (
        EventKind.PUSH_BRANCH,
        {
            "push.ref": "refs/heads/master",
            "push.name": "master",
            "push.before": ZERO_SHA,
            "push.created": True,
            "push.deleted": False,
            "push.commits_count": 1,
            "push.head_sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "installation_id": 1,
            **HELLO,
        },
    ),
    "github/push/branch_deleted": (
        EventKind.BRANCH_DELETED,
        {
            "push.ref": "refs/heads/feature-branch",
            "push.deleted": True,
            "push.after": ZERO_SHA,
            "push.head_sha": None,
            "push.commits_count": 0,
        },
    ),
    "github/push/tag_created": (
        EventKind.PUSH_TAG,
        {
            "push.ref": "refs/tags/v0.0.1",
            "push.name": "v0.0.1",
            "push.is_tag": True,
            "push.created": True,
            "push.base_ref": "refs/heads/master",
            "push.head_sha": "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd",
        },
    ),
    "github/push/tag_deleted": (
        EventKind.TAG_DELETED,
        {"push.ref": "refs/tags/simple-tag", "push.deleted": True, "push.head_sha": None, **HELLO},
    ),
    "github/workflow_run/completed": (EventKind.IGNORED, {"event": "workflow_run", "repository": "octo-org/octo-repo"}),
    "github/workflow_run/completed_with_pull_requests": (EventKind.IGNORED, {"action": "completed"}),
}


def attribute(event: ForgeEvent, path: str) -> Any:
    value: Any = event
    for part in path.split("."):
        value = getattr(value, part)
    return value


def parse_fixture(name: str) -> ForgeEvent:
    return parse(name.split("/")[1], payload_bytes(name))


def test_every_stored_github_payload_has_an_expected_row() -> None:
    assert sorted(EXPECTED) == names("github")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_github_payload_parses_to_expected_kind_and_fields(name: str) -> None:
    kind, fields = EXPECTED[name]
    event = parse_fixture(name)
    assert event.provider is Provider.GITHUB
    assert event.kind is kind
    assert event.event == name.split("/")[1]
    assert {path: attribute(event, path) for path in fields} == fields


@pytest.mark.parametrize("name", names("github"))
def test_decoded_payload_parses_like_raw_bytes(name: str) -> None:
    event = name.split("/")[1]
    assert parse(event, payload(name)) == parse(event, payload_bytes(name))


def test_parse_keeps_delivery_identity_on_the_event() -> None:
    delivery = DeliveryIdentity(provider=Provider.GITHUB, event="pull_request", delivery_id="d-1", hook_id="9")
    event = parse("pull_request", payload_bytes("github/pull_request/opened"), delivery=delivery)
    assert event.delivery == delivery


def test_unknown_event_is_ignored_with_raw_event_and_action_kept() -> None:
    body = json.dumps({"action": "starred", "repository": {"id": 7, "full_name": "o/r"}, "sender": {"login": "x"}})
    event = parse("star", body.encode())
    assert (event.kind, event.event, event.action, event.repository, event.sender) == (
        EventKind.IGNORED,
        "star",
        "starred",
        "o/r",
        "x",
    )


def test_unknown_event_with_odd_fields_is_still_ignored_not_rejected() -> None:
    event = parse("sponsorship", b'{"action": "created", "sender": "not-an-object", "repository": 5}')
    assert (event.kind, event.action, event.sender, event.repository) == (EventKind.IGNORED, "created", None, None)


def test_unknown_pull_request_action_is_an_update() -> None:
    data = payload("github/pull_request/opened")
    data["action"] = "auto_merge_enabled"
    event = parse("pull_request", data)
    assert (event.kind, event.action) == (EventKind.PR_UPDATED, "auto_merge_enabled")


def test_converted_to_draft_sets_kind_and_draft_flag() -> None:
    data = payload("github/pull_request/opened")
    data["action"] = "converted_to_draft"
    data["pull_request"]["draft"] = True
    event = parse("pull_request", data)
    assert event.kind is EventKind.PR_CONVERTED_TO_DRAFT
    assert event.pull_request is not None and event.pull_request.draft is True


def test_pull_request_from_fork_is_flagged_and_deleted_fork_counts_as_fork() -> None:
    data = payload("github/pull_request/opened")
    data["pull_request"]["head"]["repo"]["full_name"] = "mallory/Hello-World"
    forked = parse("pull_request", data).pull_request
    data["pull_request"]["head"]["repo"] = None
    deleted = parse("pull_request", data).pull_request
    assert forked is not None and (forked.from_fork, forked.head_repository) == (True, "mallory/Hello-World")
    assert deleted is not None and (deleted.from_fork, deleted.head_repository) == (True, None)


def test_bot_author_of_pull_request_is_flagged() -> None:
    data = payload("github/pull_request/opened")
    data["pull_request"]["user"] = {"login": "dependabot[bot]", "type": "Bot"}
    data["sender"] = {"login": "renovate[bot]", "type": "User"}
    event = parse("pull_request", data)
    assert event.pull_request is not None and event.pull_request.author_is_bot is True
    assert event.sender_is_bot is True


@pytest.mark.parametrize(
    ("login", "kind", "expected"),
    [("octocat", "User", False), ("my-app[bot]", None, True), ("ci", "Bot", True), (None, None, False)],
)
def test_bot_detection_uses_account_type_or_bot_suffix(login: str | None, kind: str | None, expected: bool) -> None:
    assert is_bot(login, kind) is expected


def test_edited_comment_on_pull_request_is_ignored_but_keeps_the_comment() -> None:
    data = payload("github/issue_comment/created_on_pull_request")
    data["action"] = "edited"
    event = parse("issue_comment", data)
    assert event.kind is EventKind.IGNORED
    assert event.comment is not None and event.comment.on_pull_request == 3


def test_form_encoded_delivery_parses_like_json() -> None:
    raw = payload_bytes("github/pull_request/synchronize")
    form = urlencode({"payload": raw.decode()}).encode()
    assert parse("pull_request", form) == parse("pull_request", raw)


def test_body_that_is_not_json_raises_payload_error() -> None:
    with pytest.raises(WebhookPayloadError, match="not a JSON object"):
        parse("pull_request", b"<html>proxy error</html>")


def test_known_event_missing_needed_field_names_the_field() -> None:
    data = copy.deepcopy(payload("github/pull_request/opened"))
    del data["pull_request"]["head"]["sha"]
    with pytest.raises(WebhookPayloadError) as caught:
        parse("pull_request", data)
    assert "pull_request.head.sha" in caught.value.detail
    assert caught.value.code == "webhook_payload_invalid"


def test_forge_event_is_frozen() -> None:
    event = parse_fixture("github/pull_request/opened")
    with pytest.raises(ValueError, match="frozen"):
        event.kind = EventKind.IGNORED  # type: ignore[misc]


def test_forge_event_round_trips_through_json() -> None:
    event = parse_fixture("github/pull_request/synchronize")
    assert ForgeEvent.model_validate_json(event.model_dump_json()) == event
