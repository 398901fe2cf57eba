"""POST /webhooks/{github,gitlab}: render what the intake (`webhooks/intake.py`) decided; and
/api/webhooks/deliveries to look back at stored deliveries.

A verified delivery is answered 202 with its id (and one id per project of a repository shared by several); the
same delivery again answers 200 with the first one's id; a refusal is problem+json, nothing stored. An event that
names no repository (an App installation, some GitLab job events) is answered 200 `ignored`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from taskmaster.api.deps import (
    PageOffset,
    ScopedAdmin,
    ScopedViewer,
    ServicesDep,
    SessionDep,
    get_services,
    hide_outside,
)
from taskmaster.api.errors import problem
from taskmaster.auth.schemas import Principal
from taskmaster.db.models import WebhookDelivery
from taskmaster.forges.events import Provider
from taskmaster.forges.sources import source_for
from taskmaster.webhooks import intake, service
from taskmaster.webhooks.ratelimit import retry_after_header
from taskmaster.webhooks.service import Stored

receivers = APIRouter(prefix="/webhooks", tags=["webhooks"])
router = APIRouter(prefix="/api/webhooks/deliveries", tags=["webhooks"])


class Acknowledged(BaseModel):
    id: uuid.UUID
    ids: list[uuid.UUID]
    """One stored row per project of the repository that the delivery verified against."""
    status: str
    duplicate: bool = False


# The receivers read the services from the app instead of declaring a dependency: resolving one per delivery was
# a measurable share of the receiving CPU (bench/webhooks.py --profile).
@receivers.post("/github", status_code=status.HTTP_202_ACCEPTED, responses={200: {"model": Acknowledged}})
async def github_webhook(request: Request) -> Any:
    """A GitHub delivery, signed with `X-Hub-Signature-256` by the project's webhook secret."""
    return await _receive(Provider.GITHUB, request)


@receivers.post("/gitlab", status_code=status.HTTP_202_ACCEPTED, responses={200: {"model": Acknowledged}})
async def gitlab_webhook(request: Request) -> Any:
    """A GitLab delivery, with the project's `X-Gitlab-Token` or signed with its signing token (`whsec_…`)."""
    return await _receive(Provider.GITLAB, request)


async def _receive(provider: Provider, request: Request) -> JSONResponse:
    services = get_services(request)
    assert services.webhooks is not None, "create_app sets up the webhook intake"
    incoming = intake.Incoming(request.headers, request.stream(), request.client.host if request.client else "unknown")
    result = await intake.receive(
        source_for(provider), incoming, intake=services.webhooks, db=services.db, box=services.box,
        settings=services.settings,
    )  # fmt: skip
    match result:
        case intake.Received(stored=stored) if result.duplicate:
            return JSONResponse(_acknowledged(stored, "duplicate", duplicate=True))
        case intake.Received(stored=stored):
            if services.wake_worker is not None:
                services.wake_worker()
            return JSONResponse(_acknowledged(stored, "received", duplicate=False), status_code=202)
        case intake.Pong(projects=names):
            return JSONResponse({"status": "pong", "project": names[0], "projects": list(names)})
        case intake.Ignored(detail=detail):
            # Nothing to verify it against, so nothing is stored; 200 so that the forge does not retry it.
            return JSONResponse({"status": "ignored", "detail": detail})
        case intake.Refused(status=code, title=title, detail=detail, retry_after=wait):
            response = problem(code, title=title, detail=detail)
            if wait is not None:
                response.headers["Retry-After"] = retry_after_header(wait)
            return response


def _acknowledged(stored: tuple[Stored, ...], status_: str, *, duplicate: bool) -> dict[str, Any]:
    """The first project's row as `id` (the answer for one project); `ids` lists every project's row."""
    return {"id": str(stored[0].id), "ids": [str(s.id) for s in stored], "status": status_, "duplicate": duplicate}


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
        **_out(row).model_dump(), headers=service.shown_headers(row), body=row.body.decode("utf-8", errors="replace")
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
