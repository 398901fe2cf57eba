"""POST /webhooks/{github,gitlab}: verify, store, answer; and /api/webhooks/deliveries to look back at them.

A delivery is checked in this order, each failure answered with problem+json and nothing stored: body size (413),
content type (415), event and delivery headers (400), rate per source address (429), JSON (400), project by
repository (404), rate per project (429), signature or token (401). A verified delivery is stored, then answered
202 with its id; the same delivery again answers 200 with the first one's id. The worker processes it. An event
that names no repository (an App installation, some GitLab job events) is answered 200 `ignored` and not stored:
there is no project secret to check it with.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from taskmaster.api.deps import Admin, ServicesDep, SessionDep, Viewer
from taskmaster.api.errors import problem
from taskmaster.db.models import WebhookDelivery
from taskmaster.forges.events import Provider
from taskmaster.forges.github import webhooks as github
from taskmaster.forges.gitlab import webhooks as gitlab
from taskmaster.webhooks import service
from taskmaster.webhooks.ratelimit import retry_after_header

receivers = APIRouter(prefix="/webhooks", tags=["webhooks"])
router = APIRouter(prefix="/api/webhooks/deliveries", tags=["webhooks"])

_JSON_TYPES = {Provider.GITHUB: ("application/json", "application/x-www-form-urlencoded"), Provider.GITLAB: (
    "application/json",)}  # fmt: skip


class Acknowledged(BaseModel):
    id: uuid.UUID
    status: str
    duplicate: bool = False


@receivers.post("/github", status_code=status.HTTP_202_ACCEPTED, responses={200: {"model": Acknowledged}})
async def github_webhook(request: Request, services: ServicesDep) -> Any:
    """A GitHub delivery, signed with `X-Hub-Signature-256` by the project's webhook secret."""
    return await _receive(Provider.GITHUB, request, services)


@receivers.post("/gitlab", status_code=status.HTTP_202_ACCEPTED, responses={200: {"model": Acknowledged}})
async def gitlab_webhook(request: Request, services: ServicesDep) -> Any:
    """A GitLab delivery, with the project's `X-Gitlab-Token` or signed with its signing token (`whsec_…`)."""
    return await _receive(Provider.GITLAB, request, services)


async def _receive(provider: Provider, request: Request, services: ServicesDep) -> Any:
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
    limits = services.webhook_limits
    source = request.client.host if request.client else "unknown"
    if limits is not None and (wait := limits.by_source.take(source)):
        return _too_many(wait, f"too many deliveries from {source}")
    payload = service.decode_payload(provider, body)
    key = forge.repository_key(payload)
    if key is None or not key.full_name:
        # Nothing to verify it against, so nothing is stored; 200 so that the forge does not retry it.
        return JSONResponse({"status": "ignored", "detail": f"{identity.event}: no repository to route to"})
    async with services.db.autocommit_session() as session:
        project = await service.find_project(session, provider, key.full_name)
        if project is None:
            return problem(404, title="Unknown project", detail=f"no {provider.value} project for {key.full_name}")
        if limits is not None and (wait := limits.by_project.take(str(project.id))):
            return _too_many(wait, f"too many deliveries for project {project.name}")
        service.verify(provider, project, request.headers, body, service.accepted_secrets(
            project, services.box, services.settings.webhooks))  # fmt: skip
        if identity.event == "ping":
            return JSONResponse({"status": "pong", "project": project.name})
        async with services.db.single_writer():
            stored = await service.store_delivery(
                session, identity=identity, project_id=project.id, headers=request.headers, body=body,
                action=service.raw_action(provider, payload),
            )  # fmt: skip
    if stored.duplicate:
        return JSONResponse(Acknowledged(id=stored.id, status="duplicate", duplicate=True).model_dump(mode="json"))
    if services.wake_worker is not None:
        services.wake_worker()
    return JSONResponse(Acknowledged(id=stored.id, status="received").model_dump(mode="json"), status_code=202)


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
    _: Viewer,
    status_: Annotated[str | None, Query(alias="status", description="received, retry, processed or failed")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DeliveryPage:
    """Stored deliveries, newest first, with what processing did or the error it ended with."""
    rows, total = await service.list_deliveries(session, status=status_, limit=limit, offset=offset)
    return DeliveryPage(items=[_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{delivery_id}")
async def get_delivery(delivery_id: str, session: SessionDep, _: Viewer) -> DeliveryDetail:
    """One delivery with its stored headers and body."""
    row = await service.get_delivery(session, delivery_id)
    return DeliveryDetail(
        **_out(row).model_dump(), headers=row.headers, body=row.body.decode("utf-8", errors="replace")
    )


@router.post("/{delivery_id}/redeliver")
async def redeliver(delivery_id: str, session: SessionDep, services: ServicesDep, _: Admin) -> DeliveryOut:
    """Process a stored delivery again."""
    row = await service.redeliver(session, delivery_id)
    await session.commit()
    if services.wake_worker is not None:
        services.wake_worker()
    return _out(row)
