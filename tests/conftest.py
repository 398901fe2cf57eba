"""Shared fixtures: settings in a temp state dir, and a fresh database on SQLite and on PostgreSQL.

PostgreSQL tests skip with one line when no server answers at 127.0.0.1:5432, except with CI=true,
where they fail: CI must run them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from taskmaster.config import Settings, load_settings
from taskmaster.db.base import Base
from taskmaster.db.session import Database

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


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


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
        await asyncio.to_thread(pg.drop)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def settings(request: pytest.FixtureRequest, state_dir: Path) -> AsyncIterator[Settings]:
    """Settings on a fresh, empty database of each kind."""
    async with settings_on(request.param, state_dir) as made:
        yield made


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """A `Database` whose schema is the models' (created directly; migrations are tested on their own)."""
    database = Database.from_settings(settings)
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def pg_database() -> Iterator[PostgresDatabase]:
    """A fresh PostgreSQL database for tests that need PostgreSQL specifically (e.g. separate processes)."""
    require_postgres()
    pg = PostgresDatabase()
    pg.create()
    try:
        yield pg
    finally:
        pg.drop()


def pytest_report_header(config: Any) -> str:
    state = "reachable" if postgres_available() else "NOT reachable (PostgreSQL tests skip)"
    return f"PostgreSQL at {PG_ADMIN_DSN}: {state}"


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory under /tmp that the sandbox's unprivileged user can reach (pytest's tmp_path is private to
    root): for workspaces and mirrors in tests that run steps."""
    import tempfile

    from taskmaster.workspaces.cleanup import remove_tree_sync

    path = Path(tempfile.mkdtemp(prefix="taskmaster-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        remove_tree_sync(path)


@pytest.fixture(scope="session")
def app_key() -> tuple[str, str]:
    """A throw-away RSA key pair for a GitHub App: (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public
