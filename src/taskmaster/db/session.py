"""The engine and session factory, built from settings by `app.py` (never at import time)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from taskmaster.config import Settings
from taskmaster.config.state import private_dir, private_file


@dataclass(frozen=True)
class PoolStatus:
    size: int
    checked_out: int
    overflow: int


def engine_url(settings: Settings) -> tuple[URL, dict[str, Any]]:
    """The async URL and driver arguments. `sslmode` is psycopg's word; asyncpg calls it `ssl`."""
    url = make_url(settings.database_url)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        sslmode = url.query.get("sslmode") or settings.database.sslmode
        if sslmode:
            connect_args["ssl"] = sslmode
        url = url.difference_update_query(["sslmode"])
    return url, connect_args


def create_engine(settings: Settings, *, autocommit: bool = False) -> AsyncEngine:
    """The engine of the state database. With `autocommit`, its connections stay in autocommit mode for good:
    no isolation level set and reset, and no rollback, on every checkout (see `Database.autocommit_session`)."""
    url, connect_args = engine_url(settings)
    db = settings.database
    options: dict[str, Any] = {
        "echo": db.echo,
        "pool_size": db.pool_size,
        "max_overflow": db.max_overflow,
        "pool_timeout": db.pool_timeout,
    }
    if autocommit:
        options |= {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None, "skip_autocommit_rollback": True}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            database = Path(url.database)
            if database.parent.absolute() == settings.state_dir.absolute():
                private_dir(database.parent)
            else:
                database.parent.mkdir(parents=True, exist_ok=True)
            private_file(database)
        engine = create_async_engine(url, connect_args={"timeout": db.pool_timeout, **connect_args}, **options)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(url, connect_args=connect_args, **options)
    _ping_when_idle(engine)
    return engine


IDLE_PING_SECONDS = 5.0
"""A pooled connection unused for longer than this is pinged before it is handed out."""


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Pessimistic disconnect handling for idle connections only.

    `pool_pre_ping` would cost a round trip on every checkout, which is as much as the hot queries themselves
    (`next` runs in well under a millisecond). A connection that went back to the pool moments ago is as good
    as the last statement it ran; one that sat idle may have been cut (server restart, proxy timeout), so only
    those are pinged. A connection that still fails mid-request makes SQLAlchemy invalidate the whole pool.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _stamp(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and hands out a fresh one.
            raise DisconnectionError(f"idle connection failed its ping: {exc}") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """Owns the engine for the life of a process. `session()` is a unit of work the caller commits."""

    def __init__(self, engine: AsyncEngine, autocommit_engine: AsyncEngine) -> None:
        self.engine = engine
        self.autocommit_engine = autocommit_engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """Two pools on one database: transactions, and autocommit statements for the hot read paths. The
        second pool opens its connections only when first used."""
        return cls(create_engine(settings), create_engine(settings, autocommit=True))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside a transaction that commits on success and rolls back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    @asynccontextmanager
    async def autocommit_session(self) -> AsyncIterator[AsyncSession]:
        """A session whose statements each commit on their own: no BEGIN/COMMIT round trips.

        For short read-mostly work on the hot path (authenticating a request, `next`, storing a webhook delivery),
        where each statement stands alone. Served by its own pool whose connections never leave autocommit mode:
        switching a pooled connection in and out of it cost more than the statements (on SQLite each switch is a
        hop to the driver's thread).
        """
        async with AsyncSession(bind=self.autocommit_engine, expire_on_commit=False) as session:
            yield session

    @asynccontextmanager
    async def single_writer(self) -> AsyncIterator[None]:
        """On SQLite, one writer at a time among this process's hot paths (a no-op on PostgreSQL).

        SQLite has one writer per file; concurrent writers wait in its busy handler, which sleeps in growing steps
        and so turns a burst into long tails. Queueing here instead hands the lock on as soon as it is free.
        """
        if self.dialect != "sqlite":
            yield
            return
        async with self._write_lock:
            yield

    def pool_status(self) -> PoolStatus:
        pool: Any = self.engine.pool
        size = pool.size() if hasattr(pool, "size") else 1
        checked_out = pool.checkedout() if hasattr(pool, "checkedout") else 0
        overflow = max(pool.overflow(), 0) if hasattr(pool, "overflow") else 0
        return PoolStatus(size=size, checked_out=checked_out, overflow=overflow)

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self.autocommit_engine.dispose()
