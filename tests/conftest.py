"""Shared fixtures: settings in a temp state dir, and a fresh database on SQLite and on PostgreSQL.

PostgreSQL tests skip with one line when no server answers at 127.0.0.1:5432, except with CI=true,
where they fail: CI must run them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskmaster.config import Settings
from taskmaster.db.base import Base
from taskmaster.db.session import Database
from tests.support.databases import (
    PG_ADMIN_DSN,
    PostgresDatabase,
    drop_pending,
    postgres_available,
    require_postgres,
    settings_on,
)
from tests.support.databases import make_settings as make_settings  # other test packages import it from here
from tests.support.workers import Workers


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


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


@pytest.fixture
async def shared_database(pg_database: PostgresDatabase, tmp_path: Path) -> AsyncIterator[tuple[Database, str]]:
    """A fresh PostgreSQL database, migrated as `taskmaster db migrate` leaves it, and its URL: for worker processes
    to share."""
    from taskmaster.db import migrate

    db = Database.from_settings(make_settings(tmp_path / "state", pg_database.url))
    await migrate.upgrade(db)
    try:
        yield db, pg_database.url
    finally:
        await db.dispose()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """`workers.start(env, name)`: `taskmaster worker` processes, killed at the end if the test left them running."""
    started = Workers(tmp_path)
    yield started
    started.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    drop_pending()  # the test databases dropped in the background


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


@pytest.fixture
def harness_factory(db: Database, settings: Settings, reachable_dir: Path, tmp_path: Path) -> Any:
    """`await harness_factory(definition, **project_columns)`: a project over a new real repository whose last
    commit holds `definition` as `.taskmaster.yml`, with engines that check out and run steps for real."""
    from tests.support.pipelines import Harness, make_harness

    counter = 0

    async def make(definition: str | None, **project: Any) -> Harness:
        nonlocal counter
        counter += 1
        return await make_harness(db, settings, reachable_dir, tmp_path / f"repo{counter}", definition, **project)

    return make


@pytest.fixture
async def fake_harness(db: Database, settings: Settings) -> Any:
    """A project whose pipelines run on the scripted `FakeExecutor` (no git, no processes)."""
    from tests.support.pipelines import make_fake_harness

    return await make_fake_harness(db, settings)
