"""POST /webhooks/{github,gitlab}: verify, store, answer; and /api/webhooks/deliveries to look back at them.

A delivery is checked in this order, each failure answered with problem+json and nothing stored: body size (413),
content type (415), event and delivery headers (400), rate per source address (429), JSON (400), project by
repository (404), rate per project (429), signature or token (401). A verified delivery is stored, then answered
202 with its id; the same delivery again answers 200 with the first one's id. The worker processes it. An event
that names no repository (an App installation, some GitLab job events) is answered 200 `ignored` and not stored:
there is no project secret to check it with.

The project and its decrypted secrets are remembered for `webhooks.project_cache_seconds` (`webhooks/receivers.py`):
a delivery that fails the check against remembered secrets, or whose insert finds the project gone, is decided
again on a fresh lookup, so a rotation or removal made by another process never refuses a good delivery.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from taskmaster.api.deps import (
    PageOffset,
    ScopedAdmin,
    ScopedViewer,
    Services,
    ServicesDep,
    SessionDep,
    WebhookIntake,
    get_services,
    hide_outside,
)
from taskmaster.api.errors import problem
from taskmaster.auth.schemas import Principal
from taskmaster.db.models import WebhookDelivery
from taskmaster.forges.events import DeliveryIdentity, Provider
from taskmaster.forges.github import webhooks as github
from taskmaster.forges.gitlab import webhooks as gitlab
from taskmaster.forges.signatures import WebhookSignatureError
from taskmaster.webhooks import service
from taskmaster.webhooks.ratelimit import retry_after_header
from taskmaster.webhooks.receivers import Receiver, load_receiver

receivers = APIRouter(prefix="/webhooks", tags=["webhooks"])
router = APIRouter(prefix="/api/webhooks/deliveries", tags=["webhooks"])

_JSON_TYPES = {Provider.GITHUB: ("application/json", "application/x-www-form-urlencoded"), Provider.GITLAB: (
    "application/json",)}  # fmt: skip


class Acknowledged(BaseModel):
    id: uuid.UUID
    status: str
    duplicate: bool = False


# The receivers read the services from the app instead of declaring a dependency: resolving one per delivery was
# a measurable share of the receiving CPU (bench/webhooks.py --profile).
@receivers.post("/github", status_code=status.HTTP_202_ACCEPTED, responses={200: {"model": Acknowledged}})
async def github_webhook(request: Request) -> Any:
    """A GitHub delivery, signed with `X-Hub-Signature-256` by the project's webhook secret."""
    return await _receive(Provider.GITHUB, request, get_services(request))


@receivers.post("/gitlab", status_code=status.HTTP_202_ACCEPTED, responses={200: {"model": Acknowledged}})
async def gitlab_webhook(request: Request) -> Any:
    """A GitLab delivery, with the project's `X-Gitlab-Token` or signed with its signing token (`whsec_…`)."""
    return await _receive(Provider.GITLAB, request, get_services(request))


async def _receive(provider: Provider, request: Request, services: Services) -> Any:
    limit = services.settings.server.max_body_bytes
    body = await _read_body(request, limit)
    if body is None:
        return problem(413, title="Payload too large", detail=f"the body is larger than {limit} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES[provider]:
        allowed = " or ".join(_JSON_TYPES[provider])
        return problem(
            415, title="Unsupported media type", detail=f"content type must be {allowed}, not {content_type!r}"
        )
    forge = github if provider is Provider.GITHUB else gitlab
    identity = forge.identify(request.headers)  # InvalidInput -> 400 naming the header
    intake = services.webhooks
    assert intake is not None, "create_app sets up the webhook intake"
    source = request.client.host if request.client else "unknown"
    if wait := intake.by_source.take(source):
        return _too_many(wait, f"too many deliveries from {source}")
    payload = service.decode_payload(provider, body)
    key = forge.repository_key(payload)
    if key is None or not key.full_name:
        # Nothing to verify it against, so nothing is stored; 200 so that the forge does not retry it.
        return JSONResponse({"status": "ignored", "detail": f"{identity.event}: no repository to route to"})
    full_name = key.full_name
    remembered = intake.remembered

    async def fresh() -> Receiver | None:
        async with intake.connections, services.db.autocommit_engine.connect() as connection:
            found = await load_receiver(connection, provider, full_name, services.box, services.settings)
        if found is None:
            remembered.drop(provider, full_name)
        else:
            remembered.put(provider, full_name, found)
        return found

    receiver = remembered.get(provider, full_name)
    from_memory = receiver is not None
    if receiver is None and (receiver := await fresh()) is None:
        return _unknown_project(provider, full_name)
    if wait := intake.by_project.take(str(receiver.project_id)):
        return _too_many(wait, f"too many deliveries for project {receiver.name}")
    action = service.raw_action(provider, payload)
    try:
        accepted = await _accept(provider, receiver, identity, request, body, action, services, intake)
    except WebhookSignatureError:
        if not from_memory:
            raise
        accepted = None  # a remembered project may have been rotated elsewhere: decide on fresh data
    if accepted is None:
        # The remembered project failed the check, or the insert found the project gone: look it up again
        # (once), so that a change made by another process never refuses a good delivery.
        if (receiver := await fresh()) is None:
            return _unknown_project(provider, full_name)
        accepted = await _accept(provider, receiver, identity, request, body, action, services, intake)
        if accepted is None:
            return _unknown_project(provider, full_name)
    if not isinstance(accepted, service.Stored):
        return accepted
    if accepted.duplicate:
        return JSONResponse({"id": str(accepted.id), "status": "duplicate", "duplicate": True})
    if services.wake_worker is not None:
        services.wake_worker()
    return JSONResponse({"id": str(accepted.id), "status": "received", "duplicate": False}, status_code=202)


async def _accept(
    provider: Provider,
    receiver: Receiver,
    identity: DeliveryIdentity,
    request: Request,
    body: bytes,
    action: str | None,
    services: Services,
    intake: WebhookIntake,
) -> service.Stored | JSONResponse | None:
    """Verify (raises `WebhookSignatureError`), then store; the answer to a ping; None when the project is gone."""
    service.verify(provider, receiver, request.headers, body)
    if identity.event == "ping":
        return JSONResponse({"status": "pong", "project": receiver.name})
    try:
        async with (
            intake.connections,
            services.db.single_writer(),
            services.db.autocommit_engine.connect() as connection,
        ):
            return await service.store_delivery(
                connection, identity=identity, project_id=receiver.project_id, headers=request.headers, body=body,
                action=action,
            )  # fmt: skip
    except IntegrityError:
        # The only constraint the insert can break is the project's foreign key (the delivery key is ON CONFLICT).
        return None


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The raw body, or None as soon as it is known to exceed `limit` (without reading the rest)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _unknown_project(provider: Provider, full_name: str) -> JSONResponse:
    return problem(404, title="Unknown project", detail=f"no {provider.value} project for {full_name}")


def _too_many(wait: float, detail: str) -> JSONResponse:
    response = problem(429, title="Too many requests", detail=detail)
    response.headers["Retry-After"] = retry_after_header(wait)
    return response


# -------------------------------------------------------------------------------- deliveries


class DeliveryOut(BaseModel):
    id: uuid.UUID
    provider: str
    hook_id: str
    delivery_id: str
    event: str
    action: str | None
    project_id: uuid.UUID | None
    status: str
    attempts: int
    error: str | None
    result: dict[str, Any]
    next_attempt_at: datetime | None
    processed_at: datetime | None
    created_at: datetime


class DeliveryDetail(DeliveryOut):
    headers: dict[str, Any]
    body: str


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    total: int
    limit: int
    offset: int


def _out(row: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut.model_validate(row, from_attributes=True)


@router.get("")
async def list_deliveries(
    session: SessionDep,
    principal: ScopedViewer,
    status_: Annotated[str | None, Query(alias="status", description="received, retry, processed or failed")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: PageOffset = 0,
) -> DeliveryPage:
    """Stored deliveries, newest first, with what processing did or the error it ended with (only its project's,
    for a credential limited to one)."""
    rows, total = await service.list_deliveries(
        session, status=status_, project_id=principal.project_id, limit=limit, offset=offset
    )
    return DeliveryPage(items=[_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{delivery_id}")
async def get_delivery(delivery_id: str, session: SessionDep, principal: ScopedViewer) -> DeliveryDetail:
    """One delivery with its stored headers and body."""
    row = await _visible_delivery(session, delivery_id, principal)
    return DeliveryDetail(
        **_out(row).model_dump(), headers=row.headers, body=row.body.decode("utf-8", errors="replace")
    )


@router.post("/{delivery_id}/redeliver")
async def redeliver(
    delivery_id: str, session: SessionDep, services: ServicesDep, principal: ScopedAdmin
) -> DeliveryOut:
    """Process a stored delivery again."""
    await _visible_delivery(session, delivery_id, principal)  # before a 409, which would tell that it exists
    row = await service.redeliver(session, delivery_id)
    await session.commit()
    if services.wake_worker is not None:
        services.wake_worker()
    return _out(row)


async def _visible_delivery(session: SessionDep, delivery_id: str, principal: Principal) -> WebhookDelivery:
    """The delivery; 404, worded as for a missing one, when it lies outside a limited credential's project."""
    row = await service.get_delivery(session, delivery_id)
    hide_outside(principal, row.project_id, f"webhook delivery {delivery_id} does not exist")
    return row
