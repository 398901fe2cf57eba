"""API fixtures: a migrated database, a live server on loopback, and tokens of each role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from taskmaster.app import create_app
from taskmaster.auth import service as auth_service
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.config import Settings
from taskmaster.db import migrate
from taskmaster.db.session import Database
from tests.support import live_server


@dataclass
class Api:
    url: str
    settings: Settings
    tokens: dict[Role, str]

    def client(self, role: Role | None = None, **headers: str) -> httpx.Client:
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


@pytest.fixture
async def migrated(settings: Settings) -> AsyncIterator[dict[Role, str]]:
    """Migrate the fresh database and create one token per role."""
    db = Database.from_settings(settings)
    try:
        await migrate.upgrade(db)
        tokens = {}
        async with db.transaction() as session:
            for role in Role:
                created = await auth_service.create_token(session, spec=TokenSpec(name=role.value, role=role))
                tokens[role] = created.token
        yield tokens
    finally:
        await db.dispose()


@pytest.fixture
def api(settings: Settings, migrated: dict[Role, str]) -> Iterator[Api]:
    """A real server on 127.0.0.1 (no worker), started in a thread so the test's loop stays free."""
    app = create_app(settings, run_worker=False)
    with live_server(app) as url:
        yield Api(url=url, settings=settings, tokens=migrated)
