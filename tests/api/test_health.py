"""GET /health: 200 with database round trip, pool figures and version; 503 naming the database when down."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

import taskmaster
from taskmaster.app import create_app
from taskmaster.core.logging import configure_logging
from taskmaster.db import migrate
from taskmaster.db.session import Database
from tests.api.conftest import Api
from tests.conftest import PostgresDatabase, make_settings
from tests.support import LogCapture, TcpProxy, live_server


def test_health_reports_database_pool_workers_and_version(api: Api) -> None:
    with api.client() as http:
        response = http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == taskmaster.__version__
    database = body["database"]
    assert database["status"] == "ok"
    assert database["dialect"] == ("sqlite" if api.settings.embedded else "postgresql")
    assert 0 <= database["round_trip_ms"] < 5000
    assert set(database["pool"]) == {"size", "checked_out", "overflow"}
    assert database["pool"]["size"] >= 1
    assert body["workers"] == {"alive": 0, "items": []}


def test_request_id_is_echoed_and_logged(api: Api) -> None:
    capture = LogCapture()
    configure_logging("info", "auto", stream=capture)
    try:
        with api.client() as http:
            given = http.get("/health", headers={"X-Request-ID": "abc"})
            made = http.get("/health")
            hostile = http.get("/health", headers={"X-Request-ID": 'x" {}<script>' * 20})
    finally:
        configure_logging("warning", "auto", stream=LogCapture())
    assert given.headers["x-request-id"] == "abc"
    assert len(made.headers["x-request-id"]) == 32
    assert "<" not in hostile.headers["x-request-id"]
    assert len(hostile.headers["x-request-id"]) == 32
    lines = [r for r in capture.records() if r.get("event") == "request"]
    assert any(r["request_id"] == "abc" and r["path"] == "/health" and r["status"] == 200 for r in lines)
    assert any(r["request_id"] == made.headers["x-request-id"] for r in lines)


def test_problem_bodies_carry_the_request_id(api: Api) -> None:
    with api.client(None, **{"X-Request-ID": "req-42"}) as http:
        response = http.get("/api/projects")
    assert response.status_code == 401
    assert response.json()["request_id"] == "req-42"


@pytest.mark.postgres
def test_health_turns_503_naming_the_database_while_postgres_is_away(tmp_path: Path) -> None:
    from tests.conftest import require_postgres

    require_postgres()
    pg = PostgresDatabase()
    pg.create()
    proxy = TcpProxy("127.0.0.1", 5432)
    proxy.start()
    try:
        settings = make_settings(tmp_path, f"postgresql://postgres@127.0.0.1:{proxy.port}/{pg.name}")

        async def migrate_it() -> None:
            db = Database.from_settings(settings)
            await migrate.upgrade(db)
            await db.dispose()

        asyncio.run(migrate_it())
        with live_server(create_app(settings, run_worker=False)) as url, httpx.Client(base_url=url) as http:
            assert http.get("/health").status_code == 200
            proxy.stop()
            down = http.get("/health")
            assert down.status_code == 503
            assert down.json()["status"] == "unavailable"
            assert down.json()["failing"] == ["database"]
            assert down.json()["database"]["status"] == "unavailable"
            proxy.start()
            deadline = time.monotonic() + 10
            while (back := http.get("/health")).status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert back.status_code == 200
    finally:
        proxy.stop()
        pg.drop()
