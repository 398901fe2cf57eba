"""GitLab webhooks in: check the secret token or signing token, read the delivery headers, parse into a `ForgeEvent`.

Pure functions (bytes and headers in, values out). The payload models accept both the older merge request shape
(no `event_type`, `draft` or `detailed_merge_status`) and the current one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic_core import from_json

from taskmaster.config import Settings
from taskmaster.forges.events import (
    MAX_DELIVERY_ID,
    TAG_PREFIX,
    CommentInfo,
    DeliveryIdentity,
    EventKind,
    ForgeEvent,
    PayloadModel,
    Provider,
    PullRequestInfo,
    PullRequestState,
    PushInfo,
    RepositoryKey,
    WebhookHeaderMissing,
    WebhookPayloadError,
    checked_id,
    decode_json_object,
    is_zero_sha,
    validate_payload,
)
from taskmaster.forges.signatures import WebhookSignatureError, header_value, matches_any, usable_secrets

EVENT_HEADER = "X-Gitlab-Event"
TOKEN_HEADER = "X-Gitlab-Token"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_UUID_HEADER = "X-Gitlab-Event-UUID"
WEBHOOK_UUID_HEADER = "X-Gitlab-Webhook-UUID"
INSTANCE_HEADER = "X-Gitlab-Instance"
SIGNATURE_ID_HEADER = "webhook-id"
SIGNATURE_TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SIGNING_KEY_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300

Payload = bytes | Mapping[str, Any]


# --- verification ------------------------------------------------------------------------------------------------


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    signing_keys: Sequence[str] = (),
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a delivery against the project's secret tokens and/or signing tokens; raise `WebhookSignatureError`.

    Every mechanism that is configured must pass: with `secrets`, `X-Gitlab-Token` must equal one of them; with
    `signing_keys` (`whsec_<base64>`), `webhook-signature` must hold an HMAC of `<webhook-id>.<webhook-timestamp>.
    <body>` under one of them and the timestamp must be within `tolerance_seconds` of `now` (default: the clock).
    Requiring both when both are set means a leaked plain-text token alone cannot forge signed deliveries. Several
    entries in either list allow rotation. Nothing configured refuses every delivery.
    """
    tokens = usable_secrets(secrets)
    keys = usable_secrets(signing_keys)
    if not tokens and not keys:
        raise WebhookSignatureError("no secret token or signing token is configured, so nothing can be verified")
    if tokens:
        _check_token(headers, tokens)
    if keys:
        _check_signature(headers, body, keys, tolerance_seconds, time.time() if now is None else now)


def _check_token(headers: Mapping[str, str], tokens: list[str]) -> None:
    received = header_value(headers, TOKEN_HEADER)
    if received is None:
        raise WebhookSignatureError(f"{TOKEN_HEADER} header missing: is a secret token set on the GitLab webhook?")
    if not matches_any(received.encode(), [token.encode() for token in tokens]):
        raise WebhookSignatureError(f"{TOKEN_HEADER} does not match any configured secret token")


def _check_signature(
    headers: Mapping[str, str], body: bytes, keys: list[str], tolerance_seconds: int, now: float
) -> None:
    signature = header_value(headers, SIGNATURE_HEADER)
    if not signature:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} header missing: is a signing token set on the GitLab webhook?")
    message_id = (header_value(headers, SIGNATURE_ID_HEADER) or "").strip()
    if not message_id:
        raise WebhookSignatureError(f"{SIGNATURE_ID_HEADER} header missing: it is part of the signed content")
    timestamp = (header_value(headers, SIGNATURE_TIMESTAMP_HEADER) or "").strip()
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise WebhookSignatureError(f"{SIGNATURE_TIMESTAMP_HEADER} header missing or not a Unix time in seconds")
    age = now - int(timestamp)
    if age > tolerance_seconds:
        raise WebhookSignatureError(
            f"{SIGNATURE_TIMESTAMP_HEADER} is {int(age)} s old, beyond the {tolerance_seconds} s tolerance "
            "(a replayed delivery, or the clocks disagree)"
        )
    if -age > tolerance_seconds:
        raise WebhookSignatureError(
            f"{SIGNATURE_TIMESTAMP_HEADER} is {int(-age)} s in the future, beyond the {tolerance_seconds} s tolerance"
        )
    received = _signature_entries(signature)
    if not received:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} header is malformed: expected v1,<base64> entries")
    decoded_keys = [key for key in (_decode_key_or_none(text) for text in keys) if key is not None]
    signed = b"%s.%s.%s" % (message_id.encode(), timestamp.encode(), body)
    expected = [base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()) for key in decoded_keys]
    if not any(matches_any(entry, expected) for entry in received):
        unusable = len(keys) - len(decoded_keys)
        hint = f"; {unusable} configured signing token(s) are not valid whsec_<base64> values" if unusable else ""
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} does not match the body under any signing token{hint}")


def _signature_entries(header: str) -> list[bytes]:
    """The base64 parts of the `v1,` entries; other versions are skipped, as Standard Webhooks asks."""
    entries = []
    for entry in header.split():
        version, _, value = entry.partition(",")
        if version == "v1" and value:
            entries.append(value.encode())
    return entries


def decode_signing_key(key: str) -> bytes:
    """The HMAC key of a GitLab signing token: the base64 after `whsec_`. Raises ValueError when it is not one.

    Meant for checking a token when it is configured, so that a typo is caught before the first delivery.
    """
    try:
        decoded = base64.b64decode(key.removeprefix(SIGNING_KEY_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("a signing token is whsec_ followed by base64") from exc
    if not decoded:
        raise ValueError("a signing token is whsec_ followed by base64")
    return decoded


def _decode_key_or_none(key: str) -> bytes | None:
    try:
        return decode_signing_key(key)
    except ValueError:
        return None


# --- headers and routing -----------------------------------------------------------------------------------------


def identify(headers: Mapping[str, str]) -> DeliveryIdentity:
    """Read the event name and the deduplication id; raise `WebhookHeaderMissing` naming an absent header.

    The delivery id is `Idempotency-Key` (GitLab 17.4+, the same on every retry of a delivery), else the signing
    scheme's `webhook-id` (the same value), else `X-Gitlab-Event-UUID` (one per triggering event, from 14.6), else
    the per-request `X-Gitlab-Webhook-UUID`, which changes on retries (`delivery_id_stable` is then False).
    GitLab sends no hook id.
    """
    event = header_value(headers, EVENT_HEADER)
    if not event:
        raise WebhookHeaderMissing(f"{EVENT_HEADER} header missing: not a GitLab webhook delivery")
    stable = True
    delivery = (
        _delivery_id(headers, IDEMPOTENCY_HEADER)
        or _delivery_id(headers, SIGNATURE_ID_HEADER)
        or _delivery_id(headers, EVENT_UUID_HEADER)
    )
    if not delivery:
        delivery = _delivery_id(headers, WEBHOOK_UUID_HEADER)
        stable = False
    if not delivery:
        raise WebhookHeaderMissing(
            f"{IDEMPOTENCY_HEADER} and {EVENT_UUID_HEADER} headers missing: the delivery cannot be deduplicated "
            "(GitLab older than 14.6, or a proxy dropped them)"
        )
    return DeliveryIdentity(
        provider=Provider.GITLAB,
        event=event.strip(),
        delivery_id=delivery.strip(),
        delivery_id_stable=stable,
        instance=header_value(headers, INSTANCE_HEADER),
    )


def _delivery_id(headers: Mapping[str, str], name: str) -> str | None:
    return checked_id(name, header_value(headers, name), MAX_DELIVERY_ID)


def repository_key(payload: Payload) -> RepositoryKey | None:
    """The project a delivery is about (`path_with_namespace`, id), or None when the body names none."""
    parsed = validate_payload(_ProjectOnly, _load(payload))
    project = parsed.project
    full_name = project.path_with_namespace if project else None
    project_id = project.id if project and project.id is not None else parsed.project_id
    if full_name is None and project_id is None:
        return None
    return RepositoryKey(full_name=full_name, id=project_id)


# --- payload models: only the fields Taskmaster reads; optional wherever a GitLab version omits them ---------------


class _User(PayloadModel):
    id: int | None = None
    username: str | None = None


class _Project(PayloadModel):
    id: int | None = None
    path_with_namespace: str | None = None


class _ProjectOnly(PayloadModel):
    project: _Project | None = None
    project_id: int | None = None  # job events carry only this


class _Envelope(_ProjectOnly):
    object_kind: str | None = None
    user: _User | None = None


class _Commit(PayloadModel):
    id: str


class _MergeRequest(PayloadModel):
    iid: int
    title: str = ""
    description: str | None = None
    url: str | None = None
    state: str | None = None
    action: str | None = None
    oldrev: str | None = None
    source_branch: str
    target_branch: str
    last_commit: _Commit
    merge_commit_sha: str | None = None
    draft: bool | None = None
    work_in_progress: bool | None = None  # the older name of `draft`
    author_id: int | None = None
    source: _Project | None = None
    target: _Project | None = None


class _MergeRequestEvent(_Envelope):
    object_attributes: _MergeRequest
    changes: dict[str, Any] | None = None


class _PushEvent(_Envelope):
    ref: str
    before: str
    after: str
    checkout_sha: str | None = None
    user_username: str | None = None
    total_commits_count: int | None = None
    commits: list[Any] | None = None


class _Note(PayloadModel):
    id: int
    note: str = ""
    noteable_type: str | None = None
    type: str | None = None
    url: str | None = None
    action: str | None = None
    system: bool | None = None


class _NoteEvent(_Envelope):
    object_attributes: _Note
    merge_request: _MergeRequest | None = None


# --- parsing -----------------------------------------------------------------------------------------------------

_EVENT_HEADER_KINDS = {
    "Push Hook": "push",
    "Tag Push Hook": "tag_push",
    "Merge Request Hook": "merge_request",
    "Note Hook": "note",
    "Confidential Note Hook": "note",
    "Pipeline Hook": "pipeline",
    "Job Hook": "build",
    "Build Hook": "build",
}
_MERGE_REQUEST_KINDS = {
    "open": EventKind.PR_OPENED,
    "reopen": EventKind.PR_REOPENED,
    "close": EventKind.PR_CLOSED,
    "merge": EventKind.PR_MERGED,
}
_STATES: dict[str | None, PullRequestState] = {"closed": "closed", "merged": "merged"}  # opened, locked: open
# GitLab's draft title prefixes, current (`Draft:`, `[Draft]`, `(Draft)`) and retired (`WIP:`, `[WIP]`).
_DRAFT_TITLE = re.compile(r"\s*(?:draft:|\[draft\]|\(draft\)|wip:|\[wip\])", re.IGNORECASE)
_BOT_USERNAME = re.compile(r"(?:project|group)_\d+_bot|service_account_")


def parse(event_header: str, payload: Payload, *, delivery: DeliveryIdentity | None = None) -> ForgeEvent:
    """Turn a delivery (`X-Gitlab-Event` value and body) into a `ForgeEvent`.

    The body's `object_kind` decides the event when present (it is the same for `Note Hook` and `Confidential Note
    Hook`, and for system hooks); the header otherwise. Pipeline and job events and anything unknown come back as
    `EventKind.IGNORED`; a known event missing a field Taskmaster needs, or a body that is not JSON, raises
    `WebhookPayloadError`.
    """
    data = _load(payload)
    object_kind = data.get("object_kind")
    if not isinstance(object_kind, str):
        object_kind = _EVENT_HEADER_KINDS.get(event_header.strip(), "")
    handler = _HANDLERS.get(object_kind)
    if handler is None:
        return _ignored(event_header, data, delivery)
    return handler(event_header, data, delivery)


def is_bot(username: str | None) -> bool:
    """GitLab's bot users: project and group access token users (`project_<id>_bot...`) and service accounts.

    GitLab's hook payloads carry no bot flag, so this goes by the usernames GitLab generates for them.
    """
    return username is not None and (_BOT_USERNAME.match(username) is not None or username.endswith("[bot]"))


def _load(payload: Payload) -> dict[str, Any]:
    """The body as a dict, decoded once: GitLab's event is known only after reading `object_kind`."""
    if isinstance(payload, dict):
        return payload
    if not isinstance(payload, bytes):
        return dict(payload)
    try:
        data = from_json(payload)
    except ValueError as exc:
        raise WebhookPayloadError("the body is not JSON") from exc
    if not isinstance(data, dict):
        raise WebhookPayloadError("the body is not a JSON object")
    return data


def _base(
    event_header: str, envelope: _Envelope, action: str | None, delivery: DeliveryIdentity | None
) -> dict[str, Any]:
    project = envelope.project
    username = envelope.user.username if envelope.user else None
    return {
        "provider": Provider.GITLAB,
        "event": event_header,
        "action": action,
        "repository": project.path_with_namespace if project else None,
        "repository_id": project.id if project and project.id is not None else envelope.project_id,
        "sender": username,
        "sender_is_bot": is_bot(username),
        "delivery": delivery,
    }


def _draft_change(changes: Mapping[str, Any]) -> bool | None:
    """True when the update made the merge request a draft, False when it made it ready, None for neither."""
    draft = changes.get("draft") or changes.get("work_in_progress")
    if isinstance(draft, Mapping) and draft.get("previous") != draft.get("current"):
        return bool(draft.get("current"))
    title = changes.get("title")
    if isinstance(title, Mapping):
        was = _DRAFT_TITLE.match(str(title.get("previous") or "")) is not None
        now = _DRAFT_TITLE.match(str(title.get("current") or "")) is not None
        if was != now:
            return now
    return None


def _merge_request_kind(mr: _MergeRequest, changes: Mapping[str, Any]) -> EventKind:
    if mr.action == "update":
        if mr.oldrev:
            return EventKind.PR_SYNCHRONIZED
        made_draft = _draft_change(changes)
        if made_draft is True:
            return EventKind.PR_CONVERTED_TO_DRAFT
        if made_draft is False:
            return EventKind.PR_READY_FOR_REVIEW
        return EventKind.PR_UPDATED
    return _MERGE_REQUEST_KINDS.get(mr.action or "", EventKind.PR_UPDATED)


def _pull_request_info(
    mr: _MergeRequest, user: _User | None, changes: Mapping[str, Any], kind: EventKind | None
) -> PullRequestInfo:
    state = _STATES.get(mr.state, "open")
    if kind is EventKind.PR_MERGED:
        state = "merged"
    draft = mr.draft if mr.draft is not None else bool(mr.work_in_progress) or _DRAFT_TITLE.match(mr.title) is not None
    # Hooks carry only the author's id; the acting user is the author when the ids agree, or when opening.
    author = None
    if user is not None and (kind is EventKind.PR_OPENED or (user.id is not None and user.id == mr.author_id)):
        author = user.username
    return PullRequestInfo(
        number=mr.iid,
        title=mr.title,
        body=(mr.description or "") if "description" in mr.model_fields_set else None,  # null: no description
        url=mr.url,
        state=state,
        draft=draft,
        merged=state == "merged",
        author=author,
        author_is_bot=is_bot(author),
        head_ref=mr.source_branch,
        head_sha=mr.last_commit.id,
        head_repository=mr.source.path_with_namespace if mr.source else None,
        base_ref=mr.target_branch,
        base_repository=mr.target.path_with_namespace if mr.target else None,
        previous_head_sha=mr.oldrev if kind is EventKind.PR_SYNCHRONIZED else None,
        merge_commit_sha=mr.merge_commit_sha if state == "merged" else None,
        changed=tuple(changes),
    )


def _merge_request(event_header: str, data: dict[str, Any], delivery: DeliveryIdentity | None) -> ForgeEvent:
    parsed = validate_payload(_MergeRequestEvent, data)
    mr = parsed.object_attributes
    changes = parsed.changes or {}
    kind = _merge_request_kind(mr, changes)
    info = _pull_request_info(mr, parsed.user, changes, kind)
    return ForgeEvent(kind=kind, pull_request=info, **_base(event_header, parsed, mr.action, delivery))


def _push(event_header: str, data: dict[str, Any], delivery: DeliveryIdentity | None) -> ForgeEvent:
    parsed = validate_payload(_PushEvent, data)
    created = is_zero_sha(parsed.before)
    deleted = is_zero_sha(parsed.after)
    tag = parsed.ref.startswith(TAG_PREFIX)
    if deleted:
        kind = EventKind.TAG_DELETED if tag else EventKind.BRANCH_DELETED
    else:
        kind = EventKind.PUSH_TAG if tag else EventKind.PUSH_BRANCH
    commits = parsed.total_commits_count  # `commits` is capped at 20 entries; the total is not
    info = PushInfo(
        ref=parsed.ref,
        before=parsed.before,
        after=parsed.after,
        created=created,
        deleted=deleted,
        commits_count=commits if commits is not None else len(parsed.commits or ()),
        head_sha=None if deleted else (parsed.checkout_sha or parsed.after),
    )
    base = _base(event_header, parsed, None, delivery)
    base["sender"] = parsed.user_username  # push hooks name the user at the top level, not in `user`
    base["sender_is_bot"] = is_bot(parsed.user_username)
    return ForgeEvent(kind=kind, push=info, **base)


def _note(event_header: str, data: dict[str, Any], delivery: DeliveryIdentity | None) -> ForgeEvent:
    parsed = validate_payload(_NoteEvent, data)
    note = parsed.object_attributes
    mr = parsed.merge_request if note.noteable_type == "MergeRequest" else None
    author = parsed.user.username if parsed.user else None
    info = CommentInfo(
        id=note.id,
        body=note.note,
        author=author,
        author_is_bot=is_bot(author),
        on_pull_request=mr.iid if mr else None,
        url=note.url,
        inline=note.type == "DiffNote",
    )
    # Only new, human-or-bot-written comments on merge requests ask anything of Taskmaster; older GitLab sends no
    # action (every note hook was a creation), current GitLab says `create` or `update`.
    new = note.action in (None, "create") and not note.system
    kind = EventKind.COMMENT if new and mr is not None else EventKind.IGNORED
    pull_request = _pull_request_info(mr, parsed.user, {}, None) if mr else None
    return ForgeEvent(
        kind=kind,
        comment=info,
        pull_request=pull_request,
        **_base(event_header, parsed, note.action, delivery),
    )


def _ignored(event_header: str, data: dict[str, Any], delivery: DeliveryIdentity | None) -> ForgeEvent:
    try:
        envelope = validate_payload(_Envelope, data)
    except WebhookPayloadError:
        # An event Taskmaster does not act on may carry an odd user or project; that is no reason to fail it.
        envelope = _Envelope()
    return ForgeEvent(kind=EventKind.IGNORED, **_base(event_header, envelope, _raw_action(data), delivery))


def _raw_action(data: dict[str, Any]) -> str | None:
    attributes = data.get("object_attributes")
    action = attributes.get("action") if isinstance(attributes, dict) else None
    return action if isinstance(action, str) else None


_HANDLERS: dict[str, Callable[[str, dict[str, Any], DeliveryIdentity | None], ForgeEvent]] = {
    "merge_request": _merge_request,
    "push": _push,
    "tag_push": _push,
    "note": _note,
}


class GitLabSource:
    """GitLab's `WebhookSource` (see `forges.sources`): a secret token, or a signing token (`whsec_…`) whose HMAC
    covers id, timestamp and body."""

    provider = Provider.GITLAB
    content_types = ("application/json",)
    unstored_headers = frozenset({TOKEN_HEADER.lower(), SIGNATURE_HEADER.lower()})

    def identify(self, headers: Mapping[str, str]) -> DeliveryIdentity:
        return identify(headers)

    def decode(self, body: bytes) -> dict[str, Any]:
        return decode_json_object(body)

    def repository_key(self, payload: Mapping[str, Any]) -> RepositoryKey | None:
        return repository_key(payload)

    def action(self, payload: Mapping[str, Any]) -> str | None:
        attributes = payload.get("object_attributes")
        value = attributes.get("action") if isinstance(attributes, Mapping) else None
        return str(value).replace("\x00", "\ufffd")[:100] if value is not None else None

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], *, allow_sha1: bool) -> None:
        # allow_sha1 concerns GitHub's legacy header only.
        signing = [s for s in secrets if s.startswith(SIGNING_KEY_PREFIX)]
        tokens = [s for s in secrets if not s.startswith(SIGNING_KEY_PREFIX)]
        verify(headers, body, tokens, signing_keys=signing)

    def app_secret(self, settings: Settings) -> str | None:
        return None

    def parse(self, event: str, body: bytes) -> ForgeEvent:
        return parse(event, body)
