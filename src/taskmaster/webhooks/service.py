"""Webhook deliveries: find the project, keep what was verified, and later turn it into pipeline requests.

Receiving (the API) stores a verified delivery in one statement and answers; the same delivery again finds the
first row (the unique key is provider + hook id + delivery id). Processing (the worker) takes due deliveries one
at a time, each in one transaction with its effects, so a worker that dies mid-way leaves the delivery to be
taken again and nothing half done. A failure is retried with exponential backoff, then ends as `failed`.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import Table, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from taskmaster.config import Settings
from taskmaster.config.settings import WebhookSettings
from taskmaster.core.backoff import Backoff
from taskmaster.core.clock import utcnow
from taskmaster.core.errors import Conflict, NotFound
from taskmaster.core.ids import new_id
from taskmaster.db.models import Project, PullRequest, WebhookDelivery
from taskmaster.db.session import Database
from taskmaster.forges.events import DeliveryIdentity, EventKind, ForgeEvent
from taskmaster.forges.sources import source_for
from taskmaster.pipelines import service as pipelines
from taskmaster.pipelines.service import PipelineRequest
from taskmaster.pipelines.states import PipelineType
from taskmaster.projects import settings as project_settings
from taskmaster.projects.repository import forge_path
from taskmaster.workflows import service as workflows
from taskmaster.workflows.codegen import merges as codegen_merges
from taskmaster.workflows.service import RunRequest

log = structlog.stdlib.get_logger("taskmaster.webhooks")

RECEIVED, RETRY, PROCESSED, FAILED = "received", "retry", "processed", "failed"
DUE_STATUSES = (RECEIVED, RETRY)
_UNSTORED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
"""Never stored, whatever the forge (each `WebhookSource` adds its own signature and token headers)."""
_COMMAND = re.compile(r"^\s*/taskmaster\s+(retry|review|fix)\b", re.IGNORECASE | re.MULTILINE)

PermissionCheck = Callable[[Project, str], Awaitable[bool | None]]
"""Whether a user may write to the project's repository; None when no credential can ask the forge."""
"""Whether a forge user may make Taskmaster act (write access), asked of the forge and cached by the caller."""


# -------------------------------------------------------------------------------- receiving


@dataclass(frozen=True)
class Stored:
    id: uuid.UUID
    duplicate: bool
    """True when this delivery was already stored: nothing new happens."""


async def store_delivery(
    session: AsyncSession | AsyncConnection,
    *,
    identity: DeliveryIdentity,
    project_id: uuid.UUID,
    headers: Mapping[str, str],
    body: bytes,
    action: str | None,
) -> Stored:
    """Insert the delivery unless its (provider, hook id, delivery id) is already stored for this project; one
    round trip.

    On a bare connection (the receiving route) the insert skips the ORM session's bookkeeping. An insert whose
    project has been removed meanwhile raises `IntegrityError` (the foreign key).
    """
    values = {
        "id": new_id(),
        "provider": identity.provider.value,
        "hook_id": identity.hook_id or "",
        "delivery_id": identity.delivery_id,
        "event": identity.event[:100],
        "action": action,
        "project_id": project_id,
        "headers": _storable(headers, source_for(identity.provider).unstored_headers),
        "body": body,
        "status": RECEIVED,
        "attempts": 0,
        "result": {},
        "created_at": utcnow(),
        "updated_at": utcnow(),
    }
    dialect = session.dialect if isinstance(session, AsyncConnection) else session.get_bind().dialect
    statement = _insert_unless_stored(dialect.name)
    inserted = await session.scalar(statement, values)
    if inserted is not None:
        return Stored(inserted, duplicate=False)
    first = await session.scalar(
        select(WebhookDelivery.id).where(
            WebhookDelivery.provider == values["provider"],
            WebhookDelivery.hook_id == values["hook_id"],
            WebhookDelivery.delivery_id == values["delivery_id"],
            WebhookDelivery.project_id == project_id,
        )
    )
    if first is None:  # the conflicting row was deleted in between: vanishingly rare, and safe to refuse
        raise Conflict("the delivery could not be stored; send it again")
    return Stored(first, duplicate=True)


def shown_headers(delivery: WebhookDelivery) -> dict[str, Any]:
    """A stored delivery's headers as they may be shown: none that carries or proves a secret, even in rows stored
    before its forge's source left them out."""
    return _storable(delivery.headers, source_for(delivery.provider).unstored_headers)


def _storable(headers: Mapping[str, Any], unstored: frozenset[str]) -> dict[str, Any]:
    """The headers worth keeping: none that carries or proves a secret (a signature shown to a viewer could be
    checked offline against guessed secrets)."""
    kept = {k.lower(): v for k, v in headers.items()}
    return {k: v for k, v in kept.items() if k not in _UNSTORED_HEADERS and k not in unstored}


@functools.cache
def _insert_unless_stored(dialect: str) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING RETURNING id`, built once per dialect (building it per request cost more
    than running it); the values are bound at execution."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table: Table = WebhookDelivery.__table__  # type: ignore[assignment]
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=["provider", "hook_id", "delivery_id", "project_id"])
        .returning(table.c.id)
    )


# -------------------------------------------------------------------------------- reading and redelivering


async def list_deliveries(
    session: AsyncSession, *, status: str | None = None, project_id: uuid.UUID | None = None, limit: int = 50,
    offset: int = 0,
) -> tuple[list[WebhookDelivery], int]:  # fmt: skip
    """Newest first, without bodies loaded into the answer by the caller unless asked."""
    conditions = []
    if status:
        conditions.append(WebhookDelivery.status == status)
    if project_id:
        conditions.append(WebhookDelivery.project_id == project_id)
    total = await session.scalar(select(func.count()).select_from(WebhookDelivery).where(*conditions)) or 0
    rows = await session.scalars(
        select(WebhookDelivery)
        .where(*conditions)
        .order_by(WebhookDelivery.created_at.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows.all()), int(total)


async def get_delivery(session: AsyncSession, delivery_id: uuid.UUID | str) -> WebhookDelivery:
    try:
        key = delivery_id if isinstance(delivery_id, uuid.UUID) else uuid.UUID(str(delivery_id))
    except ValueError:
        raise NotFound(f"webhook delivery {delivery_id} does not exist") from None
    row = await session.get(WebhookDelivery, key)
    if row is None:
        raise NotFound(f"webhook delivery {delivery_id} does not exist")
    return row


async def redeliver(session: AsyncSession, delivery_id: uuid.UUID | str) -> WebhookDelivery:
    """Process a stored delivery again (a failed one, or one whose effects should be redone)."""
    row = await get_delivery(session, delivery_id)
    if row.status in DUE_STATUSES:
        raise Conflict(f"webhook delivery {row.id} is already waiting to be processed")
    row.status, row.attempts, row.error, row.next_attempt_at = RECEIVED, 0, None, None
    return row


# -------------------------------------------------------------------------------- processing


def backoff(attempt: int, settings: WebhookSettings) -> timedelta:
    """Exponential with jitter, capped: attempt 1 waits between half and all of `retry_base_seconds`."""
    policy = Backoff(base=settings.retry_base_seconds, factor=2.0, cap=settings.retry_max_seconds, jitter=0.5)
    return timedelta(seconds=policy.delay(attempt))


async def process_next(db: Database, settings: Settings, *, permission: PermissionCheck | None = None) -> bool:
    """Process one due delivery; False when none is due. Safe with several workers on PostgreSQL.

    A command's author is checked with `permission` (an HTTP call to the forge) outside any transaction: the
    delivery's transaction stops where it needs an answer not known yet, the answer is asked with no row locked
    and no write lock held, and the delivery is processed again knowing it.
    """
    known = _KnownPermissions() if permission is not None else None
    for _ in range(_PERMISSION_ROUNDS):
        try:
            return await _process_one(db, settings, known)
        except _PermissionNeeded as needed:
            delivery_id = needed.delivery_id
            assert permission is not None and known is not None and delivery_id is not None
            try:
                known.learn(needed, await _ask(db, permission, needed))
            except Exception as exc:
                await _record_failure(db, delivery_id, exc, settings.webhooks)
                return True
    return True  # each round learned an answer another delivery needed; the caller comes back for more


async def _process_one(db: Database, settings: Settings, permission: PermissionCheck | None) -> bool:
    delivery_id: uuid.UUID | None = None
    try:
        async with db.transaction() as session:
            query = (
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.status.in_(DUE_STATUSES),
                    or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= utcnow()),
                )
                .order_by(WebhookDelivery.created_at)
                .limit(1)
            )
            if db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            delivery = await session.scalar(query)
            if delivery is None:
                return False
            delivery_id = delivery.id
            delivery.result = await _route(session, delivery, permission)
            delivery.status, delivery.error, delivery.next_attempt_at = PROCESSED, None, None
            delivery.attempts += 1
            delivery.processed_at = utcnow()
        return True
    except _PermissionNeeded as needed:
        assert delivery_id is not None
        needed.delivery_id = delivery_id
        raise
    except Exception as exc:
        if delivery_id is None:
            raise
        await _record_failure(db, delivery_id, exc, settings.webhooks)
        return True


_PERMISSION_ROUNDS = 4


class _PermissionNeeded(Exception):
    """Raised inside a delivery's transaction (rolling it back) when a command's author must be asked about."""

    def __init__(self, project_id: uuid.UUID, login: str) -> None:
        super().__init__(f"permission of {login} on project {project_id} not known yet")
        self.project_id = project_id
        self.login = login
        self.delivery_id: uuid.UUID | None = None
        """Set by `_process_one` before the exception leaves it."""


class _KnownPermissions:
    """The `PermissionCheck` used inside transactions: answers learned outside them, never an HTTP call."""

    def __init__(self) -> None:
        self._answers: dict[tuple[uuid.UUID, str], bool | None] = {}

    async def __call__(self, project: Project, login: str) -> bool | None:
        key = (project.id, login.lower())
        if key not in self._answers:
            raise _PermissionNeeded(project.id, login)
        return self._answers[key]

    def learn(self, needed: _PermissionNeeded, answer: bool | None) -> None:
        self._answers[(needed.project_id, needed.login.lower())] = answer


async def _ask(db: Database, permission: PermissionCheck, needed: _PermissionNeeded) -> bool | None:
    """The forge's answer, asked after the project is read and its session closed (no transaction open); None
    when there is no credential to ask with."""
    async with db.session() as session:
        project = await session.get(Project, needed.project_id)
    return await permission(project, needed.login) if project is not None else False


async def _record_failure(db: Database, delivery_id: uuid.UUID, exc: Exception, settings: WebhookSettings) -> None:
    async with db.transaction() as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
        if delivery is None:
            return
        delivery.attempts += 1
        # PostgreSQL text cannot hold NUL, which a message quoting the delivery may carry.
        delivery.error = f"{type(exc).__name__}: {exc}".replace("\x00", "\ufffd")[:4000]
        if delivery.attempts >= settings.max_attempts:
            delivery.status, delivery.next_attempt_at = FAILED, None
        else:
            delivery.status, delivery.next_attempt_at = RETRY, utcnow() + backoff(delivery.attempts, settings)
    log.warning(
        "webhook delivery processing failed", delivery=str(delivery_id), attempts=delivery.attempts,
        status=delivery.status, error=delivery.error,
    )  # fmt: skip


def parse_delivery(delivery: WebhookDelivery) -> ForgeEvent:
    """The stored delivery as a `ForgeEvent`, read by its forge's `WebhookSource`."""
    return source_for(delivery.provider).parse(delivery.event, delivery.body)


async def _route(
    session: AsyncSession, delivery: WebhookDelivery, permission: PermissionCheck | None
) -> dict[str, Any]:
    """What the event asks for, done in the caller's transaction; returns what was done."""
    event = parse_delivery(delivery)
    result: dict[str, Any] = {"kind": event.kind.value}
    project = await session.get(Project, delivery.project_id) if delivery.project_id else None
    if project is None:
        result["ignored"] = "the project was removed"
        return result
    if event.sender_is_bot and event.kind is EventKind.COMMENT:
        result["ignored"] = "comment by a bot"
        return result
    pull = await _record_pull_request(session, project, event) if event.pull_request else None
    kind = event.kind
    if kind in {EventKind.PR_OPENED, EventKind.PR_REOPENED, EventKind.PR_SYNCHRONIZED, EventKind.PR_READY_FOR_REVIEW}:
        assert pull is not None
        if pull.draft:
            result["ignored"] = "draft pull request: waiting for ready for review"
        else:
            await _request(session, result, project, delivery, pull=pull, sha=pull.head_sha, kind=kind.value)
    elif kind in {EventKind.PR_CLOSED, EventKind.PR_MERGED}:
        assert pull is not None
        reason = "pull request merged" if pull.merged else "pull request closed"
        canceled = await pipelines.cancel_for_pull_request(session, pull.id, reason=reason)
        result["canceled"] = [str(p.id) for p in canceled]
        # A Taskmaster PR's task follows it: done on merge (next tasks ready), pending again when closed unmerged.
        if codegen_task := await codegen_merges.pull_request_closed(session, project, pull):
            result["codegen"] = codegen_task
    elif kind is EventKind.PUSH_BRANCH and event.push and event.push.head_sha:
        await _route_push(session, result, project, delivery, event)
    elif kind is EventKind.CHECK_RERUN_REQUESTED and event.check:
        pull = await _pull_for_sha(session, project, event.check.head_sha)
        await _request(
            session, result, project, delivery, pull=pull, sha=event.check.head_sha, kind="rerequested",
            branch=event.check.head_branch,
        )  # fmt: skip
    elif kind is EventKind.COMMENT and event.comment and event.comment.on_pull_request is not None:
        await _route_command(session, result, project, delivery, event, permission)
    else:
        result.setdefault("ignored", f"nothing to do for {kind.value}")
    return result


async def _record_pull_request(session: AsyncSession, project: Project, event: ForgeEvent) -> PullRequest:
    info = event.pull_request
    assert info is not None
    row = await session.scalar(
        select(PullRequest).where(PullRequest.project_id == project.id, PullRequest.number == info.number)
    )
    if row is None:
        row = PullRequest(project_id=project.id, number=info.number, head_ref=info.head_ref, head_sha=info.head_sha,
                          base_ref=info.base_ref)  # fmt: skip
        session.add(row)
    if event.kind is not EventKind.COMMENT:  # a comment's copy of the pull request may be older than ours
        row.title, row.head_ref, row.head_sha, row.base_ref = info.title, info.head_ref, info.head_sha, info.base_ref
        row.base_sha = info.base_sha or row.base_sha
        row.author = info.author or row.author
        row.state, row.draft, row.merged = info.state, info.draft, info.merged
        row.url = info.url or row.url
        if info.body is not None:
            row.body = info.body
    await session.flush()
    return row


async def _pull_for_sha(session: AsyncSession, project: Project, sha: str) -> PullRequest | None:
    return await session.scalar(
        select(PullRequest)
        .where(PullRequest.project_id == project.id, PullRequest.head_sha == sha, PullRequest.state == "open")
        .limit(1)
    )


async def _request(
    session: AsyncSession,
    result: dict[str, Any],
    project: Project,
    delivery: WebhookDelivery,
    *,
    pull: PullRequest | None,
    sha: str,
    kind: str,
    branch: str | None = None,
    pipeline_type: str = PipelineType.VALIDATION.value,
) -> None:
    requested = await pipelines.request_pipeline(
        session,
        PipelineRequest(
            project_id=project.id,
            commit_sha=sha,
            pipeline_type=pipeline_type,
            trigger_event=f"{delivery.provider}:{delivery.event}:{kind}"[:100],
            branch_name=pull.head_ref if pull else branch,
            pull_request_id=pull.id if pull else None,
            pull_request_number=pull.number if pull else None,
            request_id=delivery.delivery_id[:100],
        ),
    )
    result["pipeline"] = str(requested.pipeline.id)
    result["pipeline_created"] = requested.created
    if requested.created:
        superseded = await pipelines.supersede_older(session, requested.pipeline)
        if superseded:
            result["superseded"] = [str(p.id) for p in superseded]


async def _route_push(
    session: AsyncSession, result: dict[str, Any], project: Project, delivery: WebhookDelivery, event: ForgeEvent
) -> None:
    push = event.push
    assert push is not None and push.head_sha is not None
    branch = push.name
    open_pull = await session.scalar(
        select(PullRequest.id).where(
            PullRequest.project_id == project.id, PullRequest.head_ref == branch, PullRequest.state == "open"
        )
    )
    if open_pull is not None:
        result["ignored"] = "the branch has an open pull request, which its own events validate"
    elif not project_settings.load(project.settings).push_pipelines:
        result["ignored"] = "push pipelines are off for this project (setting push_pipelines)"
    else:
        await _request(session, result, project, delivery, pull=None, sha=push.head_sha, kind="push", branch=branch,
                       pipeline_type=PipelineType.PUSH.value)  # fmt: skip


async def _route_command(
    session: AsyncSession,
    result: dict[str, Any],
    project: Project,
    delivery: WebhookDelivery,
    event: ForgeEvent,
    permission: PermissionCheck | None,
) -> None:
    comment = event.comment
    assert comment is not None and comment.on_pull_request is not None
    match = _COMMAND.search(comment.body)
    if match is None:
        result["ignored"] = "comment without a /taskmaster command"
        return
    command = match.group(1).lower()
    result["command"] = command
    author = comment.author or ""
    if comment.author_is_bot:
        result["refused"] = "bots' comments are not commands"
        return
    allowed = await permission(project, author) if permission is not None else None
    repository = forge_path(project) or project.repository
    if allowed is None:
        result["refused"] = (
            f"cannot check whether {author} may write to {repository}: project {project.name} "
            "has no forge token (store one with --forge-token) and no GitHub App covers it"
        )
        return
    if not allowed:
        result["refused"] = f"{author} has no write access to {repository}"
        return
    pull = await session.scalar(
        select(PullRequest).where(PullRequest.project_id == project.id, PullRequest.number == comment.on_pull_request)
    )
    if pull is None and event.pull_request is not None:
        pull = await _record_pull_request(session, project, event)
    if pull is None:
        result["refused"] = f"pull request #{comment.on_pull_request} is not known yet"
        return
    if command == "retry":
        await _request(session, result, project, delivery, pull=pull, sha=pull.head_sha, kind="command:retry")
        return
    # review and fix are workflow runs (an AI review; a recovery of the pull request's failure), not pipelines
    requested = await workflows.request_run(
        session,
        RunRequest(
            project_id=project.id,
            kind={"review": "review", "fix": "recovery"}[command],
            subject=f"pr{pull.number}:{pull.head_sha}",
            pull_request_id=pull.id,
            commit_sha=pull.head_sha,
            params={"command": command, "author": author},
            trigger_event=f"{delivery.provider}:{delivery.event}:command:{command}",
            request_id=delivery.delivery_id,
        ),
    )
    result["workflow_run"] = str(requested.run.id)
    result["workflow_run_created"] = requested.created
