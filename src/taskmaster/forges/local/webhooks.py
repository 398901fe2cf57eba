"""The local forge's events as webhook deliveries: the payload Taskmaster writes and the `WebhookSource` reading it.

Nothing arrives over HTTP: the local forge stores a `webhook_deliveries` row (provider `local`) when a pull request
is opened, gets new commits, is marked ready for review, is merged or closed, and the webhook loop parses it here into
the same `ForgeEvent` a GitHub `pull_request` delivery gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from taskmaster.config import Settings
from taskmaster.forges.events import (
    MAX_DELIVERY_ID,
    DeliveryIdentity,
    EventKind,
    ForgeEvent,
    PayloadModel,
    Provider,
    PullRequestInfo,
    RepositoryKey,
    WebhookHeaderMissing,
    checked_id,
    decode_json_object,
    validate_payload,
)
from taskmaster.forges.signatures import WebhookSignatureError, header_value

EVENT_HEADER = "X-Taskmaster-Event"
DELIVERY_HEADER = "X-Taskmaster-Delivery"
PULL_REQUEST_EVENT = "pull_request"

OPENED, REOPENED, SYNCHRONIZE, CLOSED = "opened", "reopened", "synchronize", "closed"
READY_FOR_REVIEW = "ready_for_review"
_KINDS = {
    OPENED: EventKind.PR_OPENED,
    REOPENED: EventKind.PR_REOPENED,
    SYNCHRONIZE: EventKind.PR_SYNCHRONIZED,
    READY_FOR_REVIEW: EventKind.PR_READY_FOR_REVIEW,
}


class LocalPullRequestEvent(PayloadModel):
    """The body of a local `pull_request` delivery: GitHub's action names, the pull request as Taskmaster sees it."""

    action: str
    sender: str | None = None
    repository: str
    pull_request: PullRequestInfo


def pull_request_body(action: str, info: PullRequestInfo, *, sender: str | None, repository: str) -> bytes:
    """The delivery body for `action` (opened, reopened, synchronize, ready_for_review, closed) on the pull request
    `info`."""
    event = LocalPullRequestEvent(action=action, sender=sender, repository=repository, pull_request=info)
    return event.model_dump_json().encode()


def headers(delivery_id: str) -> dict[str, str]:
    """The headers stored with a local delivery (what `identify` reads back)."""
    return {EVENT_HEADER.lower(): PULL_REQUEST_EVENT, DELIVERY_HEADER.lower(): delivery_id}


def parse(event: str, body: bytes | str | Mapping[str, Any]) -> ForgeEvent:
    """A local delivery as a `ForgeEvent`; closed with `merged` is `PR_MERGED`, as for GitHub."""
    if event != PULL_REQUEST_EVENT:
        return ForgeEvent(provider=Provider.LOCAL, kind=EventKind.IGNORED, event=event)
    parsed = validate_payload(LocalPullRequestEvent, body)
    info = parsed.pull_request
    if parsed.action == CLOSED:
        kind = EventKind.PR_MERGED if info.merged else EventKind.PR_CLOSED
    else:
        kind = _KINDS.get(parsed.action, EventKind.PR_UPDATED)
    return ForgeEvent(
        provider=Provider.LOCAL, kind=kind, event=event, action=parsed.action, repository=parsed.repository,
        sender=parsed.sender, pull_request=info,
    )  # fmt: skip


class LocalSource:
    """The local forge's `WebhookSource` (see `forges.sources`): its deliveries are written by Taskmaster itself,
    so `verify` refuses every one that would come over HTTP."""

    provider = Provider.LOCAL
    content_types = ("application/json",)
    unstored_headers: frozenset[str] = frozenset()

    def identify(self, headers: Mapping[str, str]) -> DeliveryIdentity:
        event = header_value(headers, EVENT_HEADER)
        delivery = checked_id(DELIVERY_HEADER, header_value(headers, DELIVERY_HEADER), MAX_DELIVERY_ID)
        if not event or not delivery:
            raise WebhookHeaderMissing(f"{EVENT_HEADER} or {DELIVERY_HEADER} header missing: not a local delivery")
        return DeliveryIdentity(provider=Provider.LOCAL, event=event.strip(), delivery_id=delivery)

    def decode(self, body: bytes) -> dict[str, Any]:
        return decode_json_object(body)

    def repository_key(self, payload: Mapping[str, Any]) -> RepositoryKey | None:
        repository = payload.get("repository")
        return RepositoryKey(full_name=repository, id=None) if isinstance(repository, str) else None

    def action(self, payload: Mapping[str, Any]) -> str | None:
        value = payload.get("action")
        return str(value)[:100] if value is not None else None

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], *, allow_sha1: bool) -> None:
        raise WebhookSignatureError("local-forge events are raised by Taskmaster itself, never received over HTTP")

    def app_secret(self, settings: Settings) -> str | None:
        return None

    def parse(self, event: str, body: bytes) -> ForgeEvent:
        return parse(event, body)
