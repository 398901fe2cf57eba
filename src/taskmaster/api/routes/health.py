"""GET /health: is the database reachable (and how fast), how full is the pool, are workers alive."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import select

import taskmaster
from taskmaster.api.deps import ServicesDep
from taskmaster.core.clock import utcnow
from taskmaster.db.models import Worker

router = APIRouter(tags=["health"])
DB_TIMEOUT_SECONDS = 3.0


@router.get("/health", response_class=JSONResponse)
async def health(services: ServicesDep) -> JSONResponse:
    """200 when the database answers; 503 naming the failing part when it does not."""
    db = services.db
    body: dict[str, Any] = {"status": "ok", "version": taskmaster.__version__}
    pool = db.pool_status()
    database: dict[str, Any] = {
        "dialect": db.dialect,
        "pool": {"size": pool.size, "checked_out": pool.checked_out, "overflow": pool.overflow},
    }
    try:
        database["round_trip_ms"] = round(await asyncio.wait_for(db.ping(), DB_TIMEOUT_SECONDS), 3)
        database["status"] = "ok"
        body["workers"] = await _workers(services)
    except Exception as exc:  # any driver or timeout error means the database is down for us
        database["status"] = "unavailable"
        database["error"] = f"{type(exc).__name__}: {exc}"[:300]
        body["status"] = "unavailable"
        body["failing"] = ["database"]
    body["database"] = database
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


async def _workers(services: ServicesDep) -> dict[str, Any]:
    stale_after = services.settings.worker.stale_after_seconds
    now = utcnow()
    async with services.db.session() as session:
        rows = (await session.scalars(select(Worker).order_by(Worker.name))).all()
    items = []
    for row in rows:
        age = (now - row.last_heartbeat_at).total_seconds()
        items.append(
            {
                "name": row.name,
                "mode": row.mode,
                "status": row.status,
                "last_heartbeat_age_s": round(age, 1),
                "alive": row.status == "running" and age <= stale_after,
            }
        )
    return {"alive": sum(item["alive"] for item in items), "items": items}
