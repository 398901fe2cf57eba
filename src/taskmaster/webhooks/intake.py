"""Receiving a delivery: the checks in their order, the repository's projects and secrets, the insert; the outcome
is a value (`Received`, `Ignored`, `Pong`, `Refused`) that a door renders, for any forge's `WebhookSource`.

Checked in this order, nothing stored on a failure: body size (413), content type (415), event and delivery
headers (400), rate per source address (429), JSON (400), the repository's projects (404), rate per project (429),
signature or token against each project's own secrets (401). A delivery is stored once for every project of the
repository whose secret verifies it (two projects may share a repository, each with its own webhook).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from taskmaster.config import Settings
from taskmaster.db.session import Database
from taskmaster.forges.events import DeliveryIdentity
from taskmaster.forges.signatures import WebhookSignatureError
from taskmaster.forges.sources import WebhookSource
from taskmaster.secrets import SecretBox
from taskmaster.webhooks.ratelimit import TokenBuckets
from taskmaster.webhooks.receivers import Receiver, ReceiverCache, load_receivers
from taskmaster.webhooks.service import Stored, store_delivery


@dataclass
class WebhookIntake:
    """What this process's webhook receivers share: token buckets per source address and per project, the
    remembered projects (`ReceiverCache`), and a bound on the pooled connections they write with.

    Each statement checks a connection out for itself alone, and at most the pool's size at once: at 50 concurrent
    deliveries, taking more made the pool open and close a PostgreSQL connection for each one beyond its size
    (bench/webhooks.py: ~250 sessions per 2,000 deliveries, 0.26x the bare endpoint; bounded: 12 sessions, 0.38x).
    Waiting here costs nothing; a new backend costs PostgreSQL milliseconds of CPU.
    """

    by_source: TokenBuckets
    by_project: TokenBuckets
    remembered: ReceiverCache
    connections: asyncio.Semaphore

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookIntake:
        hooks = settings.webhooks
        return cls(
            by_source=TokenBuckets(hooks.source_rate, hooks.source_burst),
            by_project=TokenBuckets(hooks.project_rate, hooks.project_burst),
            remembered=ReceiverCache(hooks.project_cache_seconds),
            connections=asyncio.Semaphore(settings.database.pool_size),
        )


@dataclass(frozen=True)
class Incoming:
    """One delivery as the door received it: headers, the body still to be read, the sender's address."""

    headers: Mapping[str, str]
    chunks: AsyncIterator[bytes]
    source_address: str


@dataclass(frozen=True)
class Received:
    """Stored for each project whose secret verified it (the oldest project's row first)."""

    stored: tuple[Stored, ...]

    @property
    def duplicate(self) -> bool:
        """True when every row was already stored: nothing new happens."""
        return all(s.duplicate for s in self.stored)


@dataclass(frozen=True)
class Ignored:
    """Nothing to route it to (an event that names no repository); not stored, and the forge should not retry."""

    detail: str


@dataclass(frozen=True)
class Pong:
    """A verified ping: nothing stored."""

    projects: tuple[str, ...]


@dataclass(frozen=True)
class Refused:
    """Not stored: the HTTP status, a title and a detail naming what was wrong; `retry_after` seconds for 429."""

    status: int
    title: str
    detail: str
    retry_after: float | None = None


IntakeResult = Received | Ignored | Pong | Refused


async def receive(
    source: WebhookSource, incoming: Incoming, *, intake: WebhookIntake, db: Database, box: SecretBox,
    settings: Settings,
) -> IntakeResult:  # fmt: skip
    """Check, verify and store one delivery. Raises the forge's header and payload errors (400) and
    `WebhookSignatureError` (401) for a delivery no project's secret verifies."""
    limit = settings.server.max_body_bytes
    body = await _read_body(incoming, limit)
    if body is None:
        return Refused(413, "Payload too large", f"the body is larger than {limit} bytes")
    content_type = incoming.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in source.content_types:
        allowed = " or ".join(source.content_types)
        return Refused(415, "Unsupported media type", f"content type must be {allowed}, not {content_type!r}")
    identity = source.identify(incoming.headers)
    if wait := intake.by_source.take(incoming.source_address):
        return _too_many(wait, f"too many deliveries from {incoming.source_address}")
    payload = source.decode(body)
    key = source.repository_key(payload)
    if key is None or not key.full_name:
        return Ignored(f"{identity.event}: no repository to route to")
    full_name = key.full_name
    remembered = intake.remembered

    async def fresh() -> tuple[Receiver, ...]:
        async with intake.connections, db.autocommit_engine.connect() as connection:
            found = await load_receivers(connection, source.provider, full_name, box, settings)
        if found:
            remembered.put(source.provider, full_name, found)
        else:
            remembered.drop(source.provider, full_name)
        return found

    receivers = remembered.get(source.provider, full_name)
    from_memory = receivers is not None
    if receivers is None and not (receivers := await fresh()):
        return _unknown_project(source, full_name)
    for receiver in receivers:
        if wait := intake.by_project.take(str(receiver.project_id)):
            return _too_many(wait, f"too many deliveries for project {receiver.name}")
    delivery = _Delivery(source, identity, incoming.headers, body, source.action(payload))
    accepted = await delivery.accept(receivers, intake, db, settle=not from_memory)
    if accepted is None:
        # The remembered projects failed the check, or an insert found a project gone: look them up again (once),
        # so that a change made by another process never refuses a good delivery.
        if not (receivers := await fresh()):
            return _unknown_project(source, full_name)
        accepted = await delivery.accept(receivers, intake, db, settle=True)
        if accepted is None:
            return _unknown_project(source, full_name)
    return accepted


@dataclass(frozen=True)
class _Delivery:
    source: WebhookSource
    identity: DeliveryIdentity
    headers: Mapping[str, str]
    body: bytes
    action: str | None

    async def accept(
        self, receivers: tuple[Receiver, ...], intake: WebhookIntake, db: Database, *, settle: bool
    ) -> Received | Pong | None:
        """Verify against each project, then store for those that verified; None to decide again on fresh data
        (nothing verified and `settle` is False, or a project is gone). With `settle`, raises the first project's
        `WebhookSignatureError` when no project verified it."""
        verified: list[Receiver] = []
        first_error: WebhookSignatureError | None = None
        for receiver in receivers:
            try:
                self.source.verify(self.headers, self.body, receiver.secrets(), allow_sha1=receiver.allow_sha1)
            except WebhookSignatureError as exc:
                first_error = first_error or exc
            else:
                verified.append(receiver)
        if not verified:
            assert first_error is not None, "receivers is never empty"
            if settle:
                raise first_error
            return None  # a remembered project may have been rotated elsewhere
        if self.identity.event == "ping":
            return Pong(tuple(r.name for r in verified))
        stored: list[Stored] = []
        try:
            for receiver in verified:
                async with intake.connections, db.single_writer(), db.autocommit_engine.connect() as connection:
                    row = await store_delivery(
                        connection, identity=self.identity, project_id=receiver.project_id, headers=self.headers,
                        body=self.body, action=self.action,
                    )  # fmt: skip
                stored.append(row)
        except IntegrityError:
            # The only constraint an insert can break is the project's foreign key (the delivery key is ON CONFLICT).
            return None
        return Received(tuple(stored))


async def _read_body(incoming: Incoming, limit: int) -> bytes | None:
    """The raw body, or None as soon as it is known to exceed `limit` (without reading the rest)."""
    declared = incoming.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in incoming.chunks:
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _unknown_project(source: WebhookSource, full_name: str) -> Refused:
    return Refused(404, "Unknown project", f"no {source.provider.value} project for {full_name}")


def _too_many(wait: float, detail: str) -> Refused:
    return Refused(429, "Too many requests", detail, retry_after=wait)
