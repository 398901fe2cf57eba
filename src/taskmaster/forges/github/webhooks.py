"""GitHub webhooks in: verify the HMAC signature, read the delivery headers, parse the payload into a `ForgeEvent`.

Pure functions (bytes and headers in, values out) so the receiver can call them on its hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from taskmaster.config import Settings
from taskmaster.forges.events import (
    MAX_DELIVERY_ID,
    MAX_HOOK_ID,
    TAG_PREFIX,
    CheckInfo,
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
from taskmaster.forges.signatures import (
    Digest,
    WebhookSignatureError,
    header_value,
    hmac_hexdigest,
    matches_any,
    usable_secrets,
)

EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
HOOK_ID_HEADER = "X-GitHub-Hook-ID"
SIGNATURE_256_HEADER = "X-Hub-Signature-256"
SIGNATURE_1_HEADER = "X-Hub-Signature"

Payload = bytes | Mapping[str, Any]


# --- verification ------------------------------------------------------------------------------------------------


def verify(headers: Mapping[str, str], body: bytes, secrets: Sequence[str], *, allow_sha1: bool = False) -> None:
    """Check that `body` (the exact bytes received) was signed by GitHub with one of `secrets`.

    `X-Hub-Signature-256` is `sha256=<hex HMAC-SHA256 of the body>`. Give the current and the previous secret while
    rotating: either one matching is enough. The legacy SHA-1 `X-Hub-Signature` is read only with `allow_sha1` and
    only when the SHA-256 header is absent (a wrong SHA-256 never falls back to SHA-1). With no secret configured
    every delivery is refused. Raises `WebhookSignatureError` saying what was wrong.
    """
    keys = [secret.encode() for secret in usable_secrets(secrets)]
    if not keys:
        raise WebhookSignatureError("no webhook secret is configured, so no delivery can be verified")
    signature = header_value(headers, SIGNATURE_256_HEADER)
    if signature is not None:
        _check_signature(signature, SIGNATURE_256_HEADER, "sha256", 64, body, keys)
        return
    legacy = header_value(headers, SIGNATURE_1_HEADER)
    if legacy is not None and allow_sha1:
        _check_signature(legacy, SIGNATURE_1_HEADER, "sha1", 40, body, keys)
        return
    if legacy is not None:
        raise WebhookSignatureError(
            f"{SIGNATURE_256_HEADER} header missing; the SHA-1 {SIGNATURE_1_HEADER} header sent is not accepted"
        )
    raise WebhookSignatureError(f"{SIGNATURE_256_HEADER} header missing: is a secret set on the GitHub webhook?")


def _check_signature(value: str, header: str, digest: Digest, hex_length: int, body: bytes, keys: list[bytes]) -> None:
    prefix = f"{digest}="
    value = value.strip()
    received = value[len(prefix) :].lower()
    if not value.startswith(prefix) or len(received) != hex_length or not _is_hex(received):
        raise WebhookSignatureError(f"{header} header is malformed: expected {prefix}<{hex_length} hex digits>")
    expected = [hmac_hexdigest(key, body, digest).encode() for key in keys]
    if not matches_any(received.encode(), expected):
        raise WebhookSignatureError(
            f"{header} does not match the body under any configured secret "
            "(wrong secret, or the body was changed or re-encoded on the way)"
        )


def _is_hex(text: str) -> bool:
    return all(char in "0123456789abcdef" for char in text)


# --- headers and routing -----------------------------------------------------------------------------------------


def identify(headers: Mapping[str, str]) -> DeliveryIdentity:
    """Read the event name, delivery id and hook id; raise `WebhookHeaderMissing` naming an absent header."""
    event = header_value(headers, EVENT_HEADER)
    if not event:
        raise WebhookHeaderMissing(f"{EVENT_HEADER} header missing: not a GitHub webhook delivery")
    delivery = checked_id(DELIVERY_HEADER, header_value(headers, DELIVERY_HEADER), MAX_DELIVERY_ID)
    if not delivery:
        raise WebhookHeaderMissing(f"{DELIVERY_HEADER} header missing: not a GitHub webhook delivery")
    return DeliveryIdentity(
        provider=Provider.GITHUB,
        event=event.strip(),
        delivery_id=delivery,
        hook_id=checked_id(HOOK_ID_HEADER, header_value(headers, HOOK_ID_HEADER), MAX_HOOK_ID),
        instance=header_value(headers, "X-GitHub-Enterprise-Host"),
        target_type=header_value(headers, "X-GitHub-Hook-Installation-Target-Type"),
        target_id=header_value(headers, "X-GitHub-Hook-Installation-Target-ID"),
    )


def repository_key(payload: Payload) -> RepositoryKey | None:
    """The repository a delivery is about, or None for events without one (App installation, App ping, ...)."""
    repository = validate_payload(_RepositoryOnly, json_body(payload)).repository
    if repository is None:
        return None
    return RepositoryKey(full_name=repository.full_name, id=repository.id)


# --- payload models: only the fields Taskmaster reads, lenient about everything else -------------------------------
# githubkit's generated models were measured and not used here: they reject 11 of the 26 stored real payloads
# (fields its schema marks required but older or app-specific deliveries lack, e.g. `labels[].archived_by`,
# `repository.topics`), and `githubkit.webhooks.parse` rebuilds a TypeAdapter on each call (~21 ms per
# pull_request delivery). These models read the same fields by the same names in ~0.1 ms.


class _User(PayloadModel):
    login: str
    type: str | None = None


class _Repository(PayloadModel):
    id: int | None = None
    full_name: str


class _Installation(PayloadModel):
    id: int


class _RepositoryOnly(PayloadModel):
    repository: _Repository | None = None


class _Envelope(PayloadModel):
    action: str | None = None
    sender: _User | None = None
    repository: _Repository | None = None
    installation: _Installation | None = None


class _Branch(PayloadModel):
    ref: str
    sha: str
    repo: _Repository | None = None


class _PullRequest(PayloadModel):
    number: int
    title: str = ""
    body: str | None = None
    html_url: str | None = None
    state: str
    draft: bool | None = None
    merged: bool | None = None
    merged_at: str | None = None
    merge_commit_sha: str | None = None
    user: _User | None = None
    head: _Branch
    base: _Branch


class _PullRequestEvent(_Envelope):
    pull_request: _PullRequest
    before: str | None = None
    changes: dict[str, Any] | None = None


class _Commit(PayloadModel):
    id: str


class _PushEvent(_Envelope):
    ref: str
    before: str
    after: str
    created: bool | None = None
    deleted: bool | None = None
    forced: bool | None = None
    base_ref: str | None = None
    commits: list[Any] | None = None
    head_commit: _Commit | None = None


class _App(PayloadModel):
    id: int | None = None


class _PullRequestNumber(PayloadModel):
    number: int


class _SuiteOfRun(PayloadModel):
    head_branch: str | None = None


class _CheckRun(PayloadModel):
    id: int
    name: str | None = None
    head_sha: str
    app: _App | None = None
    check_suite: _SuiteOfRun | None = None
    pull_requests: list[_PullRequestNumber] = []


class _RequestedAction(PayloadModel):
    identifier: str


class _CheckRunEvent(_Envelope):
    check_run: _CheckRun
    requested_action: _RequestedAction | None = None


class _CheckSuite(PayloadModel):
    id: int
    head_sha: str
    head_branch: str | None = None
    app: _App | None = None
    pull_requests: list[_PullRequestNumber] = []


class _CheckSuiteEvent(_Envelope):
    check_suite: _CheckSuite


class _PullRequestLink(PayloadModel):
    url: str | None = None


class _Issue(PayloadModel):
    number: int
    pull_request: _PullRequestLink | None = None  # present only when the issue is a pull request


class _Comment(PayloadModel):
    id: int
    body: str | None = None
    html_url: str | None = None
    user: _User | None = None


class _IssueCommentEvent(_Envelope):
    issue: _Issue
    comment: _Comment


# --- parsing -----------------------------------------------------------------------------------------------------

_PULL_REQUEST_KINDS = {
    "opened": EventKind.PR_OPENED,
    "reopened": EventKind.PR_REOPENED,
    "synchronize": EventKind.PR_SYNCHRONIZED,
    "ready_for_review": EventKind.PR_READY_FOR_REVIEW,
    "converted_to_draft": EventKind.PR_CONVERTED_TO_DRAFT,
}


def parse(event: str, payload: Payload, *, delivery: DeliveryIdentity | None = None) -> ForgeEvent:
    """Turn a delivery (`X-GitHub-Event` value and body) into a `ForgeEvent`.

    `payload` is the raw body (JSON, or the `payload=` form of form-encoded hooks) or the already decoded JSON
    object. Events and actions Taskmaster does not act on come back as `EventKind.IGNORED` with the raw event and
    action kept; a known event missing a field Taskmaster needs, or a body that is not JSON, raises
    `WebhookPayloadError`.
    """
    data = json_body(payload)
    handler = _HANDLERS.get(event)
    if handler is None:
        return _ignored(event, data, delivery)
    return handler(event, data, delivery)


def is_bot(login: str | None, account_type: str | None) -> bool:
    """GitHub Apps act as `type: "Bot"` accounts named `<app>[bot]`."""
    return account_type == "Bot" or (login is not None and login.endswith("[bot]"))


def json_body(payload: Payload) -> bytes | str | Mapping[str, Any]:
    """JSON text or mapping; the JSON of form-encoded deliveries (`payload=...`) taken out of the form."""
    if isinstance(payload, bytes) and payload[:8] == b"payload=":
        try:
            return parse_qs(payload.decode("utf-8"), strict_parsing=True)["payload"][0]
        except (UnicodeDecodeError, ValueError, KeyError) as exc:
            raise WebhookPayloadError("form-encoded body without a readable payload field") from exc
    return payload


def _base(event: str, envelope: _Envelope, delivery: DeliveryIdentity | None) -> dict[str, Any]:
    sender = envelope.sender
    repository = envelope.repository
    return {
        "provider": Provider.GITHUB,
        "event": event,
        "action": envelope.action,
        "repository": repository.full_name if repository else None,
        "repository_id": repository.id if repository else None,
        "sender": sender.login if sender else None,
        "sender_is_bot": is_bot(sender.login, sender.type) if sender else False,
        "installation_id": envelope.installation.id if envelope.installation else None,
        "delivery": delivery,
    }


def _ignored(event: str, data: bytes | str | Mapping[str, Any], delivery: DeliveryIdentity | None) -> ForgeEvent:
    try:
        envelope = validate_payload(_Envelope, data)
    except WebhookPayloadError:
        # An event Taskmaster does not act on may carry an odd sender or repository; only a non-JSON body is fatal.
        envelope = validate_payload(_BareAction, data).as_envelope()
    return ForgeEvent(kind=EventKind.IGNORED, **_base(event, envelope, delivery))


class _BareAction(PayloadModel):
    action: Any = None

    def as_envelope(self) -> _Envelope:
        return _Envelope(action=self.action if isinstance(self.action, str) else None)


def _pull_request(event: str, data: Any, delivery: DeliveryIdentity | None) -> ForgeEvent:
    parsed = validate_payload(_PullRequestEvent, data)
    pr = parsed.pull_request
    merged = bool(pr.merged) or pr.merged_at is not None
    state: PullRequestState = "merged" if merged else ("open" if pr.state == "open" else "closed")
    if parsed.action == "closed":
        kind = EventKind.PR_MERGED if merged else EventKind.PR_CLOSED
    else:
        kind = _PULL_REQUEST_KINDS.get(parsed.action or "", EventKind.PR_UPDATED)
    info = PullRequestInfo(
        number=pr.number,
        title=pr.title,
        body=(pr.body or "") if "body" in pr.model_fields_set else None,  # null: no description
        url=pr.html_url,
        state=state,
        draft=bool(pr.draft),
        merged=merged,
        author=pr.user.login if pr.user else None,
        author_is_bot=is_bot(pr.user.login, pr.user.type) if pr.user else False,
        head_ref=pr.head.ref,
        head_sha=pr.head.sha,
        head_repository=pr.head.repo.full_name if pr.head.repo else None,
        base_ref=pr.base.ref,
        base_sha=pr.base.sha,
        base_repository=pr.base.repo.full_name if pr.base.repo else None,
        previous_head_sha=parsed.before if kind is EventKind.PR_SYNCHRONIZED else None,
        merge_commit_sha=pr.merge_commit_sha if merged else None,
        changed=tuple(parsed.changes or ()),
    )
    return ForgeEvent(kind=kind, pull_request=info, **_base(event, parsed, delivery))


def _push(event: str, data: Any, delivery: DeliveryIdentity | None) -> ForgeEvent:
    parsed = validate_payload(_PushEvent, data)
    created = parsed.created if parsed.created is not None else is_zero_sha(parsed.before)
    deleted = parsed.deleted if parsed.deleted is not None else is_zero_sha(parsed.after)
    tag = parsed.ref.startswith(TAG_PREFIX)
    if deleted:
        kind = EventKind.TAG_DELETED if tag else EventKind.BRANCH_DELETED
    else:
        kind = EventKind.PUSH_TAG if tag else EventKind.PUSH_BRANCH
    info = PushInfo(
        ref=parsed.ref,
        before=parsed.before,
        after=parsed.after,
        created=created,
        deleted=deleted,
        forced=parsed.forced,
        commits_count=len(parsed.commits or ()),
        head_sha=None if deleted else parsed.after,
        base_ref=parsed.base_ref,
    )
    return ForgeEvent(kind=kind, push=info, **_base(event, parsed, delivery))


def _check_run(event: str, data: Any, delivery: DeliveryIdentity | None) -> ForgeEvent:
    parsed = validate_payload(_CheckRunEvent, data)
    run = parsed.check_run
    if parsed.action == "rerequested":
        kind = EventKind.CHECK_RERUN_REQUESTED
    elif parsed.action == "requested_action":
        kind = EventKind.CHECK_REQUESTED_ACTION
    else:
        kind = EventKind.IGNORED
    info = CheckInfo(
        kind="check_run",
        id=run.id,
        name=run.name,
        head_sha=run.head_sha,
        head_branch=run.check_suite.head_branch if run.check_suite else None,
        app_id=run.app.id if run.app else None,
        pull_requests=tuple(pr.number for pr in run.pull_requests),
        requested_action=parsed.requested_action.identifier if parsed.requested_action else None,
    )
    return ForgeEvent(kind=kind, check=info, **_base(event, parsed, delivery))


def _check_suite(event: str, data: Any, delivery: DeliveryIdentity | None) -> ForgeEvent:
    parsed = validate_payload(_CheckSuiteEvent, data)
    suite = parsed.check_suite
    # `requested` comes with every push (the push event already says so); only a person's re-run asks for work.
    kind = EventKind.CHECK_RERUN_REQUESTED if parsed.action == "rerequested" else EventKind.IGNORED
    info = CheckInfo(
        kind="check_suite",
        id=suite.id,
        name=None,
        head_sha=suite.head_sha,
        head_branch=suite.head_branch,
        app_id=suite.app.id if suite.app else None,
        pull_requests=tuple(pr.number for pr in suite.pull_requests),
    )
    return ForgeEvent(kind=kind, check=info, **_base(event, parsed, delivery))


def _issue_comment(event: str, data: Any, delivery: DeliveryIdentity | None) -> ForgeEvent:
    parsed = validate_payload(_IssueCommentEvent, data)
    comment = parsed.comment
    on_pull_request = parsed.issue.number if parsed.issue.pull_request is not None else None
    # Only new comments on pull requests ask anything of Taskmaster; edits, deletions and issue threads are kept
    # (the comment block is filled) but ignored.
    new_on_pr = parsed.action == "created" and on_pull_request is not None
    info = CommentInfo(
        id=comment.id,
        body=comment.body or "",
        author=comment.user.login if comment.user else None,
        author_is_bot=is_bot(comment.user.login, comment.user.type) if comment.user else False,
        on_pull_request=on_pull_request,
        url=comment.html_url,
    )
    kind = EventKind.COMMENT if new_on_pr else EventKind.IGNORED
    return ForgeEvent(kind=kind, comment=info, **_base(event, parsed, delivery))


def _simple(kind: EventKind) -> Callable[[str, Any, DeliveryIdentity | None], ForgeEvent]:
    def handler(event: str, data: Any, delivery: DeliveryIdentity | None) -> ForgeEvent:
        return ForgeEvent(kind=kind, **_base(event, validate_payload(_Envelope, data), delivery))

    return handler


_HANDLERS: dict[str, Callable[[str, Any, DeliveryIdentity | None], ForgeEvent]] = {
    "pull_request": _pull_request,
    "push": _push,
    "check_run": _check_run,
    "check_suite": _check_suite,
    "issue_comment": _issue_comment,
    "ping": _simple(EventKind.PING),
    "installation": _simple(EventKind.INSTALLATION),
    "installation_repositories": _simple(EventKind.INSTALLATION),
}


class GitHubSource:
    """GitHub's `WebhookSource` (see `forges.sources`): HMAC-signed JSON or form-encoded deliveries."""

    provider = Provider.GITHUB
    content_types = ("application/json", "application/x-www-form-urlencoded")
    unstored_headers = frozenset({SIGNATURE_256_HEADER.lower(), SIGNATURE_1_HEADER.lower()})

    def identify(self, headers: Mapping[str, str]) -> DeliveryIdentity:
        return identify(headers)

    def decode(self, body: bytes) -> dict[str, Any]:
        text = json_body(body)
        return decode_json_object(text) if isinstance(text, bytes | str) else dict(text)

    def repository_key(self, payload: Mapping[str, Any]) -> RepositoryKey | None:
        return repository_key(payload)

    def action(self, payload: Mapping[str, Any]) -> str | None:
        value = payload.get("action")
        return str(value).replace("\x00", "\ufffd")[:100] if value is not None else None

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], *, allow_sha1: bool) -> None:
        verify(headers, body, secrets, allow_sha1=allow_sha1)

    def app_secret(self, settings: Settings) -> str | None:
        secret = settings.github.webhook_secret
        return secret.get_secret_value() if secret else None

    def parse(self, event: str, body: bytes) -> ForgeEvent:
        return parse(event, body)
