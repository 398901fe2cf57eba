"""The engine's disconnect handling: idle pooled connections are pinged, busy ones are not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from taskmaster.db import session as db_session
from taskmaster.db.session import Database
from tests.conftest import PostgresDatabase, make_settings
from tests.support import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxied(pg_database: PostgresDatabase) -> Iterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", 5432)
    proxy.start()
    yield proxy
    proxy.stop()


async def _answers(db: Database) -> bool:
    async with db.session() as session:
        return bool((await session.execute(text("SELECT 1"))).scalar_one() == 1)


async def test_an_idle_connection_cut_behind_the_pool_is_replaced_before_use(
    proxied: TcpProxy, pg_database: PostgresDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, f"postgresql://postgres@127.0.0.1:{proxied.port}/{pg_database.name}")
    db = Database.from_settings(settings)
    try:
        assert await _answers(db)
        proxied.stop()  # the pooled connection is cut while it sits in the pool
        proxied.start()
        monkeypatch.setattr(db_session, "IDLE_PING_SECONDS", 0.0)
        assert await _answers(db)
    finally:
        await db.dispose()


async def test_a_recently_used_connection_is_not_pinged(
    proxied: TcpProxy, pg_database: PostgresDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot path pays no ping: a connection cut right after use fails its next statement, and the pool recovers."""
    settings = make_settings(tmp_path, f"postgresql://postgres@127.0.0.1:{proxied.port}/{pg_database.name}")
    db = Database.from_settings(settings)
    try:
        monkeypatch.setattr(db_session, "IDLE_PING_SECONDS", 3600.0)
        assert await _answers(db)
        proxied.stop()
        proxied.start()
        with pytest.raises(Exception, match=r"(?i)connection|closed"):
            await _answers(db)
        assert await _answers(db)  # the failure invalidated the pool; a fresh connection works
    finally:
        await db.dispose()
