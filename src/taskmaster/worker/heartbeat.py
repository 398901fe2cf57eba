"""Heartbeats: this worker's row in `workers`, refreshed on a timer and marked `stopped` on a graceful stop.

`/health` and the reaper read the rows; a running worker whose heartbeat is stale is presumed dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import structlog
from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

import taskmaster
from taskmaster.core.clock import utcnow
from taskmaster.core.ids import new_id
from taskmaster.db.models import Worker
from taskmaster.db.session import Database
from taskmaster.tasks.service import renew_claims_held_by

if TYPE_CHECKING:
    from taskmaster.config import Settings

log = structlog.stdlib.get_logger("taskmaster.worker.heartbeat")

WorkerMode = Literal["process", "in-process"]


def worker_id(settings: Settings, mode: WorkerMode = "process") -> str:
    """This worker's name in `workers` and on the rows it leases: `worker.id` if set, else the host name.

    Stable across restarts, so a restarted worker resumes what it still owns at once instead of waiting for its
    old heartbeat to go stale. An in-process worker gets its own suffix so a `taskmaster worker` on the same host
    never shares its name.
    """
    if settings.worker.id:
        return settings.worker.id
    host = socket.gethostname() or "localhost"
    return host if mode == "process" else f"{host}:in-process"


@dataclass(frozen=True)
class WorkerIdentity:
    """Who is beating: `name` is the worker's id (`worker_id`), unique in `workers`."""

    name: str
    mode: str
    hostname: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    version: str = taskmaster.__version__
    capabilities: dict[str, Any] = field(default_factory=dict)


class Heartbeat:
    """Keeps one worker row fresh. `start()` writes the first beat and starts the loop; `stop()` ends both.

    Must be started and stopped on one event loop. A failed beat is logged and retried on the next tick,
    so a database blip never stops the worker. Works on SQLite and PostgreSQL (INSERT … ON CONFLICT).
    `on_beat` is called after every beat that reached the database (it renews the worker's pipeline lease).
    `remove_on_stop`: delete the row instead of marking it stopped (short-lived beaters such as `pipeline run`).
    """

    def __init__(
        self,
        db: Database,
        identity: WorkerIdentity,
        *,
        interval_seconds: float,
        on_beat: Callable[[], None] | None = None,
        remove_on_stop: bool = False,
    ) -> None:
        self.db = db
        self.identity = identity
        self.interval_seconds = interval_seconds
        self.on_beat = on_beat
        self.remove_on_stop = remove_on_stop
        self.started_at: datetime = utcnow()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Write the first beat (logging, not raising, if it fails), then beat every interval."""
        self.started_at = utcnow()
        await self._beat_logged()
        self._task = asyncio.create_task(self._run(), name=f"heartbeat:{self.identity.name}")

    async def beat(self) -> None:
        """Upsert the row as running, with `last_heartbeat_at` = now. Raises the database's error."""
        now = utcnow()
        values: dict[str, Any] = {
            "hostname": self.identity.hostname,
            "pid": self.identity.pid,
            "version": self.identity.version,
            "mode": self.identity.mode,
            "status": "running",
            "started_at": self.started_at,
            "last_heartbeat_at": now,
            "stopped_at": None,
            "capabilities": self.identity.capabilities,
            "updated_at": now,
        }
        insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        stmt = insert(Worker).values(id=new_id(), name=self.identity.name, created_at=now, **values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Worker.name], set_={key: stmt.excluded[key] for key in values}
        )
        async with self.db.transaction() as session:
            await session.execute(stmt)
            # Task claims this worker holds are leases with an expiry: the beat renews them (`db.leases`).
            await renew_claims_held_by(session, self.identity.name)
        if self.on_beat is not None:
            self.on_beat()

    async def stop(self) -> None:
        """End the loop, then mark the row `stopped` (a database error is logged, not raised). Idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await self.mark_stopped()
        except Exception as exc:  # the process is going away; the stale heartbeat will tell the story
            log.warning("could not mark worker stopped", worker=self.identity.name, error=str(exc))

    async def mark_stopped(self) -> None:
        now = utcnow()
        async with self.db.transaction() as session:
            if self.remove_on_stop:
                await session.execute(delete(Worker).where(Worker.name == self.identity.name))
                return
            await session.execute(
                update(Worker)
                .where(Worker.name == self.identity.name)
                .values(status="stopped", stopped_at=now, updated_at=now)
            )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            await self._beat_logged()

    async def _beat_logged(self) -> None:
        try:
            await self.beat()
        except Exception as exc:  # any driver error: keep beating, the next tick may succeed
            log.warning("heartbeat failed", worker=self.identity.name, error=str(exc))
