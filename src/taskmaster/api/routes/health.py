"""GET /health: is the database reachable (and how fast), how full is the pool, are workers alive."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

import taskmaster
from taskmaster.api.deps import ServicesDep
from taskmaster.db.workers import read_workers_on

router = APIRouter(tags=["health"])
DB_TIMEOUT_SECONDS = 3.0


@router.get("/health", response_class=JSONResponse)
async def health(services: ServicesDep) -> JSONResponse:
    """200 when the database answers; 503 naming the failing part when it does not. Needs no credentials."""
    db = services.db
    body: dict[str, Any] = {"status": "ok", "version": taskmaster.__version__}
    pool = db.pool_status()
    database: dict[str, Any] = {
        "dialect": db.dialect,
        "pool": {"size": pool.size, "checked_out": pool.checked_out, "overflow": pool.overflow},
    }
    try:
        # One connection and one query: reading the heartbeats is the round trip we time. On SQLite every
        # statement is a hop to the driver's thread, so a separate `SELECT 1` would double the cost.
        async with asyncio.timeout(DB_TIMEOUT_SECONDS), db.engine.connect() as conn:
            started = time.perf_counter()
            workers = await read_workers_on(conn, services.settings.worker.stale_after_seconds)
            database["round_trip_ms"] = round((time.perf_counter() - started) * 1000, 3)
        database["status"] = "ok"
        body["workers"] = {
            "alive": sum(w.alive for w in workers),
            "items": [
                {
                    "name": w.name,
                    "mode": w.mode,
                    "status": w.status,
                    "last_heartbeat_age_s": round(w.heartbeat_age_seconds, 1),
                    "alive": w.alive,
                }
                for w in workers
            ],
        }
    except Exception as exc:  # any driver error or the timeout means the database is down for us
        database["status"] = "unavailable"
        database["error"] = f"{type(exc).__name__}: {exc}"[:300]
        body["status"] = "unavailable"
        body["failing"] = ["database"]
    body["database"] = database
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)
