"""Read the `workers` table: who is alive, judged by heartbeat age and status (used by `/health`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from taskmaster.core.clock import utcnow
from taskmaster.db.models import Worker
from taskmaster.db.session import Database

_COLUMNS = (
    Worker.name,
    Worker.mode,
    Worker.status,
    Worker.hostname,
    Worker.pid,
    Worker.version,
    Worker.started_at,
    Worker.last_heartbeat_at,
    Worker.stopped_at,
)
# Core rather than ORM objects: /health reads this on every probe.
_QUERY = select(*_COLUMNS).order_by(Worker.name)


@dataclass(frozen=True)
class WorkerInfo:
    """A worker as `/health` shows it. `alive`: status running and a heartbeat younger than the limit."""

    name: str
    mode: str
    status: str
    hostname: str
    pid: int
    version: str
    started_at: datetime
    last_heartbeat_at: datetime
    stopped_at: datetime | None
    heartbeat_age_seconds: float
    alive: bool


async def read_workers(db: Database, stale_after_seconds: float) -> list[WorkerInfo]:
    """Every known worker, by name; raises the database's error if it cannot be read."""
    async with db.engine.connect() as conn:
        return await read_workers_on(conn, stale_after_seconds)


async def read_workers_on(conn: AsyncConnection, stale_after_seconds: float) -> list[WorkerInfo]:
    """The same on a connection the caller holds (so a probe can time exactly one query)."""
    rows = (await conn.execute(_QUERY)).all()
    now = utcnow()
    workers = []
    for row in rows:
        age = max((now - row.last_heartbeat_at).total_seconds(), 0.0)
        workers.append(
            WorkerInfo(
                **row._asdict(),
                heartbeat_age_seconds=age,
                alive=row.status == "running" and age <= stale_after_seconds,
            )
        )
    return workers
