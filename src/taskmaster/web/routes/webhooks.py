"""Webhook delivery pages: what arrived, whether it was verified, what became of it, and redelivery."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from taskmaster.core.errors import InvalidInput
from taskmaster.projects.service import list_projects
from taskmaster.web.deps import AdminDep, ViewerDep, services
from taskmaster.web.pages import PageRoute, render
from taskmaster.webhooks import service

router = APIRouter(route_class=PageRoute, include_in_schema=False)

STATUSES = ("received", "retry", "processed", "failed")
_SECRET_HEADER = re.compile(r"signature|token|secret|authorization|cookie", re.I)
BODY_PREVIEW = 64 * 1024


def masked(headers: dict[str, Any]) -> list[tuple[str, str]]:
    """Headers to show: values of anything that could help guess or replay a secret are masked."""
    return [(name, "••••••" if _SECRET_HEADER.search(name) else str(value)) for name, value in sorted(headers.items())]


@router.get("/webhooks", response_class=HTMLResponse)
async def delivery_list(request: Request, viewer: ViewerDep, status: str | None = None, page: int = 1) -> Response:
    if status and status not in STATUSES:
        raise InvalidInput(f"unknown delivery status {status!r}: one of {', '.join(STATUSES)}")
    page = max(1, min(page, 10_000))
    async with services(request).db.autocommit_session() as session:
        rows, total = await service.list_deliveries(
            session, status=status, project_id=viewer.principal.project_id, limit=50, offset=(page - 1) * 50
        )
        names = {p.id: p.name for p in await list_projects(session)}
    return render(
        request, "webhooks.html", viewer, deliveries=rows, total=total, page=page, status=status, statuses=STATUSES,
        names=names, more=page * 50 < total,
    )  # fmt: skip


@router.get("/webhooks/{delivery_id}", response_class=HTMLResponse)
async def delivery_page(request: Request, delivery_id: str, viewer: ViewerDep) -> Response:
    async with services(request).db.autocommit_session() as session:
        row = await service.get_delivery(session, delivery_id)
    viewer.check_visible(row.project_id, f"webhook delivery {delivery_id} does not exist")
    body = row.body[:BODY_PREVIEW].decode("utf-8", errors="replace")
    if len(row.body) <= BODY_PREVIEW:
        with contextlib.suppress(ValueError, RecursionError):  # not JSON, or absurdly nested: shown as text
            body = json.dumps(json.loads(row.body), indent=2)
    return render(
        request, "webhook.html", viewer, delivery=row, headers=masked(row.headers), body=body,
        clipped=len(row.body) > BODY_PREVIEW, result=json.dumps(row.result, indent=2),
    )  # fmt: skip


@router.post("/webhooks/{delivery_id}/redeliver")
async def redeliver(request: Request, delivery_id: str, viewer: AdminDep) -> Response:
    app = services(request)
    async with app.db.transaction() as session:
        row = await service.get_delivery(session, delivery_id)
        viewer.check_visible(row.project_id, f"webhook delivery {delivery_id} does not exist")
        await service.redeliver(session, delivery_id)
    if app.wake_worker is not None:
        app.wake_worker()
    return RedirectResponse(f"/webhooks/{delivery_id}", status_code=303)
