"""Databases for tests: settings in a state directory, on SQLite or on a throw-away PostgreSQL database.

PostgreSQL tests skip with one line when no server answers at 127.0.0.1:5432, except with CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from taskmaster.config import Settings, load_settings

PG_ADMIN_DSN = os.environ.get("TASKMASTER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_pg_available: bool | None = None


def _pg_base() -> str:
    return PG_ADMIN_DSN.rsplit("/", 1)[0]


def _pg_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, connect_timeout=5, autocommit=True) as conn:
        conn.execute(sql)


def postgres_available() -> bool:
    global _pg_available
    if _pg_available is None:
        try:
            _pg_execute("SELECT 1")
            _pg_available = True
        except Exception:
            _pg_available = False
    return _pg_available


def require_postgres() -> None:
    """Skip (or fail under CI=true) when PostgreSQL is not reachable."""
    if postgres_available():
        return
    reason = f"PostgreSQL not reachable at {PG_ADMIN_DSN}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}, and CI=true requires the PostgreSQL tests to run")
    pytest.skip(reason)


class PostgresDatabase:
    """A throw-away database on the test server: created on enter, dropped on exit."""

    def __init__(self) -> None:
        self.name = f"tm_test_{uuid.uuid4().hex[:12]}"
        self.url = f"{_pg_base()}/{self.name}"

    def create(self) -> None:
        _pg_execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        _pg_execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def drop_later(self) -> None:
        """Drop it in the background, while the next test runs (a drop took ~2 s of each PostgreSQL test's
        teardown on a busy machine); `drop_pending()` at the end of the session waits for every drop."""
        global _dropper
        if _dropper is None:
            _dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-test-database")
        _drops.append(_dropper.submit(self.drop))


_dropper: ThreadPoolExecutor | None = None
_drops: list[Future[None]] = []


def drop_pending() -> None:
    """Wait for the background drops (their errors are raised here, failing the session's teardown loudly)."""
    global _dropper
    while _drops:
        _drops.pop().result()
    if _dropper is not None:
        _dropper.shutdown()
        _dropper = None


def make_settings(state_dir: Path, database_url: str | None = None, **env: str) -> Settings:
    environ = {"TASKMASTER_HOME": str(state_dir), "TASKMASTER_ENV": "test", **env}
    if database_url:
        environ["DATABASE_URL"] = database_url
    return load_settings(environ, config_file=None)


@asynccontextmanager
async def settings_on(kind: str, state_dir: Path) -> AsyncIterator[Settings]:
    """Settings on a fresh, empty database: "sqlite" (embedded) or "postgresql" (created, then dropped)."""
    if kind == "sqlite":
        yield make_settings(state_dir)
        return
    require_postgres()
    pg = PostgresDatabase()
    await asyncio.to_thread(pg.create)
    try:
        yield make_settings(state_dir, pg.url)
    finally:
        pg.drop_later()
