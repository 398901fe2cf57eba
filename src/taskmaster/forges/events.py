"""One typed event for both forges: what a verified webhook delivery means to Taskmaster.

GitHub and GitLab parsers (`forges.github.webhooks`, `forges.gitlab.webhooks`) produce `ForgeEvent`; the receiver
and the pipeline router read only this model, never the raw payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic_core import from_json

from taskmaster.core.errors import MalformedRequest

ZERO_SHA = "0" * 40
BRANCH_PREFIX = "refs/heads/"
TAG_PREFIX = "refs/tags/"

MAX_DELIVERY_ID = 200
"""Longest delivery id stored (the `webhook_deliveries.delivery_id` column); a longer one is refused."""
MAX_HOOK_ID = 100
"""Longest hook id stored (the `webhook_deliveries.hook_id` column); a longer one is refused."""
MAX_JSON_DEPTH = 200
"""Deepest nesting of objects and arrays accepted in a delivery: where pydantic's JSON parser stops (its own limit,
not a setting); real deliveries nest about ten deep."""


class Provider(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"
    LOCAL = "local"  # the local forge: events Taskmaster raises itself for local-path projects


class EventKind(StrEnum):
    """What happened, in Taskmaster's terms; the forge's own event and action names stay on the event."""

    PR_OPENED = "pr_opened"
    PR_REOPENED = "pr_reopened"
    PR_SYNCHRONIZED = "pr_synchronized"  # new commits on the pull request's head
    PR_READY_FOR_REVIEW = "pr_ready_for_review"
    PR_CONVERTED_TO_DRAFT = "pr_converted_to_draft"
    PR_CLOSED = "pr_closed"  # closed without merging
    PR_MERGED = "pr_merged"
    PR_UPDATED = "pr_updated"  # any other pull request action: edited, labeled, review requested, approved, ...
    PUSH_BRANCH = "push_branch"  # includes the push that creates a branch (`push.created`)
    PUSH_TAG = "push_tag"
    BRANCH_DELETED = "branch_deleted"
    TAG_DELETED = "tag_deleted"
    CHECK_RERUN_REQUESTED = "check_rerequested"  # "re-run" pressed on a check run or suite (see `check.app_id`)
    CHECK_REQUESTED_ACTION = "check_requested_action"  # a button Taskmaster put on a check run was pressed
    COMMENT = "comment"  # a new comment on a pull request / merge request (plain-issue comments are `ignored`)
    PING = "ping"
    INSTALLATION = "installation"  # GitHub App installed, removed, suspended, or its repositories changed
    IGNORED = "ignored"  # anything else; `event` and `action` keep what the forge sent


PullRequestState = Literal["open", "closed", "merged"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL: a title or login carrying one would fail every write of the event's
        # effects. The delivery's body keeps the original bytes.
        if isinstance(value, str) and "\x00" in value:
            return value.replace("\x00", "\ufffd")
        return value


class PullRequestInfo(_Frozen):
    """A pull request (GitHub) or merge request (GitLab) as the delivery shows it."""

    number: int  # GitHub number, GitLab iid: what people type after `#` / `!`
    title: str
    body: str | None = None
    """The description ("" when the forge sends none); None when this delivery does not carry it."""
    url: str | None = None
    state: PullRequestState
    draft: bool = False
    merged: bool = False
    author: str | None = None  # None when the forge only sends an id (GitLab updates by someone else)
    author_is_bot: bool = False
    head_ref: str
    head_sha: str
    head_repository: str | None = None  # `owner/name` of the head branch's repository; differs for forks
    base_repository: str | None = None
    base_ref: str
    base_sha: str | None = None  # GitLab merge request hooks do not send it
    previous_head_sha: str | None = None  # before new commits (GitHub `before`, GitLab `oldrev`)
    merge_commit_sha: str | None = None
    changed: tuple[str, ...] = ()  # field names in the forge's `changes` block (title, body, base, draft, labels, ...)

    @property
    def from_fork(self) -> bool:
        """Whether the head branch lives in another repository than the base: untrusted code, give it no secrets.

        A head repository the forge no longer knows (a deleted fork) counts as a fork.
        """
        return self.head_repository != self.base_repository


class PushInfo(_Frozen):
    """A push of a branch or a tag, including creation and deletion."""

    ref: str  # full ref, `refs/heads/main` or `refs/tags/v1.0.0`
    before: str
    after: str
    created: bool
    deleted: bool
    forced: bool | None = None  # GitHub only
    commits_count: int
    head_sha: str | None  # the new tip; None when the ref was deleted
    base_ref: str | None = None  # GitHub: the branch a new tag points into

    @property
    def is_tag(self) -> bool:
        return self.ref.startswith(TAG_PREFIX)

    @property
    def name(self) -> str:
        """The branch or tag name without its `refs/heads/` or `refs/tags/` prefix."""
        return short_ref(self.ref)


class CommentInfo(_Frozen):
    """A comment; `on_pull_request` is the pull request number, or None for comments on issues, commits, ..."""

    id: int
    body: str
    author: str | None
    author_is_bot: bool
    on_pull_request: int | None
    url: str | None = None
    inline: bool = False  # a comment on a line of the diff (GitLab DiffNote)


class CheckInfo(_Frozen):
    """A GitHub check run or check suite, for re-run requests and requested actions."""

    kind: Literal["check_run", "check_suite"]
    id: int
    name: str | None  # check run name; None for a suite
    head_sha: str
    head_branch: str | None = None
    app_id: int | None = None  # the App that owns the check: only our own App's checks concern us
    pull_requests: tuple[int, ...] = ()
    requested_action: str | None = None  # identifier of the pressed button (check_requested_action)


class DeliveryIdentity(_Frozen):
    """Who sent a delivery and how to deduplicate it, read from the request headers alone.

    Deduplicate on `(provider, hook_id, delivery_id)`: GitHub reuses a delivery id on manual redelivery and can send
    the same id to two hooks; GitLab's `Idempotency-Key` stays the same across its automatic retries.
    """

    provider: Provider
    event: str  # the event header as sent: `pull_request`, `Merge Request Hook`, ...
    delivery_id: str
    delivery_id_stable: bool = True  # False when only a per-request id was available (GitLab without idempotency key)
    hook_id: str | None = None  # GitHub `X-GitHub-Hook-ID`; GitLab sends no hook id
    instance: str | None = None  # GitLab `X-Gitlab-Instance`, GitHub Enterprise host; None for github.com
    target_type: str | None = None  # GitHub `X-GitHub-Hook-Installation-Target-Type`: repository, integration, ...
    target_id: str | None = None


class RepositoryKey(_Frozen):
    """How the receiver finds the project (and its secret) before verifying: the forge's name and numeric id.

    At least one of the two is set. Prefer the id: it survives renames and transfers.
    """

    full_name: str | None  # `owner/name` on GitHub, `path_with_namespace` on GitLab
    id: int | None


class ForgeEvent(_Frozen):
    """One webhook delivery, parsed: the same shape for GitHub and GitLab."""

    provider: Provider
    kind: EventKind
    event: str  # the forge's event name as passed to `parse`
    action: str | None = None  # the forge's raw action (`synchronize`, `update`, `create`...), if the event has one
    repository: str | None = None
    repository_id: int | None = None
    sender: str | None = None  # login / username of whoever caused the event
    sender_is_bot: bool = False
    installation_id: int | None = None  # GitHub App installation that received the delivery
    pull_request: PullRequestInfo | None = None
    push: PushInfo | None = None
    comment: CommentInfo | None = None
    check: CheckInfo | None = None
    delivery: DeliveryIdentity | None = None


class WebhookHeaderMissing(MalformedRequest):
    """A header every delivery of this forge carries is absent: not a real delivery, or a proxy dropped it."""

    code = "webhook_header_missing"
    title = "Webhook header missing"


class WebhookHeaderInvalid(MalformedRequest):
    """A delivery header is present but unusable (too long to be a real forge's id)."""

    code = "webhook_header_invalid"
    title = "Webhook header not valid"


class WebhookPayloadError(MalformedRequest):
    """The body is not JSON, or a known event lacks a field Taskmaster needs."""

    code = "webhook_payload_invalid"
    title = "Webhook payload not valid"


def checked_id(header: str, value: str | None, limit: int) -> str | None:
    """A delivery id header's value, stripped; `WebhookHeaderInvalid` when it is longer than `limit`."""
    if value is None:
        return None
    value = value.strip()
    if len(value) > limit:
        raise WebhookHeaderInvalid(f"{header} header is longer than {limit} characters")
    return value


def decode_json_object(text: bytes | str) -> dict[str, Any]:
    """A delivery's JSON body as a dict; `WebhookPayloadError` when it is not JSON, not an object, or nested deeper
    than `MAX_JSON_DEPTH`.

    pydantic's parser (the one the worker parses deliveries with) is used rather than `json.loads`: it stops at
    the depth limit by itself, where `json.loads` recurses until a `RecursionError` for a body ~1,000 deep, and it
    is faster (~130 µs against ~200 µs for a 27 KiB pull_request delivery).
    """
    try:
        data = from_json(text)
    except ValueError as exc:
        if "recursion limit" in str(exc):
            raise WebhookPayloadError(f"the body nests objects or arrays deeper than {MAX_JSON_DEPTH} levels") from None
        raise WebhookPayloadError(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WebhookPayloadError("body is JSON but not an object")
    return data


def short_ref(ref: str) -> str:
    """`refs/heads/x` -> `x`, `refs/tags/v1` -> `v1`; other refs unchanged."""
    if ref.startswith(BRANCH_PREFIX):
        return ref[len(BRANCH_PREFIX) :]
    if ref.startswith(TAG_PREFIX):
        return ref[len(TAG_PREFIX) :]
    return ref


def is_zero_sha(sha: str | None) -> bool:
    """The all-zero object id both forges use for "no commit" (ref created or deleted)."""
    return not sha or sha.strip("0") == ""


class PayloadModel(BaseModel):
    """Base of the forge modules' payload models: only the fields Taskmaster reads, frozen, extras ignored."""

    model_config = ConfigDict(frozen=True)


PM = TypeVar("PM", bound=BaseModel)


def validate_payload(model: type[PM], data: bytes | str | Mapping[str, Any]) -> PM:
    """`data` (JSON text or a mapping) as `model`, or `WebhookPayloadError` naming the fields that did not fit."""
    try:
        if isinstance(data, bytes | str):
            return model.model_validate_json(data)
        return model.model_validate(data if isinstance(data, dict) else dict(data))
    except ValidationError as exc:
        raise WebhookPayloadError(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    if errors and errors[0]["type"] in {"json_invalid", "json_type"}:
        return "the body is not a JSON object"
    fields = ", ".join(".".join(str(part) for part in error["loc"]) or "(body)" for error in errors[:5])
    return f"the payload lacks fields Taskmaster needs or has them in an unexpected type: {fields}"
