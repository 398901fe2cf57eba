"""Every /api route demands a bearer credential and a role; errors are problem+json; secrets stay secret."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import httpx

from taskmaster.app import create_app
from taskmaster.auth import service as auth_service
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.config import Settings
from taskmaster.db.session import Database
from tests.api.conftest import Api
from tests.support import live_server


def test_every_api_operation_declares_bearer_auth_and_refuses_anonymous_calls(api: Api) -> None:
    with api.client() as http:
        spec = http.get("/openapi.json").json()
        operations = [
            (method, path, op)
            for path, item in spec["paths"].items()
            if path.startswith("/api")
            for method, op in item.items()
        ]
        assert len(operations) >= 8
        undeclared = [f"{m.upper()} {p}" for m, p, op in operations if not op.get("security")]
        assert undeclared == []
        # The declaration is backed by the dependency: an anonymous call is refused before anything runs.
        for method, path, _ in operations:
            concrete = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
            response = http.request(method.upper(), concrete, json={})
            assert response.status_code == 401, f"{method.upper()} {path} answered {response.status_code}"
            assert response.headers["content-type"] == "application/problem+json"


def test_missing_or_bad_token_is_401_problem_json(api: Api) -> None:
    with api.client() as http:
        response = http.get("/api/projects")
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"
        body = response.json()
        assert body["status"] == 401
        assert "Authorization: Bearer" in body["detail"]
        bad = http.get("/api/projects", headers={"Authorization": "Bearer tm_nope"})
        assert bad.status_code == 401
        assert bad.json()["detail"] == "unknown API token"


def test_viewer_reads_but_cannot_write(api: Api) -> None:
    with api.client(Role.viewer) as http:
        assert http.get("/api/projects").status_code == 200
        response = http.post("/api/projects", json={"name": "x", "repository": "/tmp/x"})
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert "admin role" in response.json()["detail"]
    with api.client(Role.developer) as http:
        assert http.get("/api/tokens").status_code == 403


def test_invalid_body_is_422_problem_json_naming_the_field(api: Api) -> None:
    with api.client(Role.admin) as http:
        response = http.post("/api/projects", json={"name": "bad name!", "repository": "/r"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "body.name" in response.json()["detail"]


def test_secret_stored_through_the_api_is_never_plain_text(api: Api) -> None:
    secret = "whsec-very-distinctive-4711"
    with api.client(Role.admin) as http:
        created = http.post(
            "/api/projects",
            json={"name": "hello", "repository": "https://github.com/o/hello", "forge": "github",
                  "webhook_secret": secret},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        assert created.json()["has_webhook_secret"] is True
        assert secret not in created.text
        shown = http.get(f"/api/projects/{created.json()['id']}")
        assert shown.status_code == 200
        assert secret not in shown.text
    if api.settings.embedded:
        raw = Path(api.settings.database_url.split("///", 1)[1])
        for path in raw.parent.glob(raw.name + "*"):  # the database, its WAL and shared memory
            assert secret.encode() not in path.read_bytes()
        with sqlite3.connect(raw) as conn:
            stored = conn.execute("select webhook_secret from projects").fetchone()[0]
        assert stored.startswith("gAAAA")  # a Fernet token


def test_project_scoped_token_only_reaches_its_project(api: Api, settings: Settings) -> None:
    with api.client(Role.admin) as http:
        a = http.post("/api/projects", json={"name": "a", "repository": "/a"}).json()
        b = http.post("/api/projects", json={"name": "b", "repository": "/b"}).json()
        scoped = http.post("/api/tokens", json={"name": "s", "role": "viewer", "project_id": a["id"]}).json()
        scoped_admin = http.post("/api/tokens", json={"name": "sa", "role": "admin", "project_id": a["id"]}).json()
        assert scoped["token"].startswith("tm_")
        listed = http.get("/api/tokens").json()
        assert all("token" not in t for t in listed)
    with api.client(Authorization=f"Bearer {scoped['token']}") as http:
        assert http.get(f"/api/projects/{a['id']}").status_code == 200
        denied = http.get(f"/api/projects/{b['id']}")
        assert denied.status_code == 403
        assert denied.json()["detail"] == f"the credential is limited to project {a['id']}"
        # The listing confines it: its own project only.
        assert [p["id"] for p in http.get("/api/projects").json()] == [a["id"]]
    with api.client(Authorization=f"Bearer {scoped_admin['token']}") as http:
        # A route with no project in its path and no confinement of its own refuses it, whatever the role
        # (tests/api/test_project_scope.py lists the routes that confine it).
        unconfined = http.get("/api/tokens")
        assert unconfined.status_code == 403 and unconfined.json()["detail"] == denied.json()["detail"]


def test_revoked_token_stops_working(api: Api) -> None:
    with api.client(Role.admin) as http:
        created = http.post("/api/tokens", json={"name": "tmp", "role": "viewer"}).json()
        revoked = http.delete(f"/api/tokens/{created['id']}")
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
    with api.client(Authorization=f"Bearer {created['token']}") as http:
        response = http.get("/api/projects")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_a_token_revoked_through_this_server_stops_working_at_once_though_it_was_remembered(api: Api) -> None:
    with api.client(Role.admin) as http:
        created = http.post("/api/tokens", json={"name": "cached", "role": "viewer"}).json()
    with api.client(Authorization=f"Bearer {created['token']}") as http:
        assert http.get("/api/projects").status_code == 200  # now remembered by the server
        assert http.get("/api/projects").status_code == 200
    with api.client(Role.admin) as http:
        assert http.delete(f"/api/tokens/{created['id']}").status_code == 200
    with api.client(Authorization=f"Bearer {created['token']}") as http:
        refused = http.get("/api/projects")
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]


async def test_a_token_revoked_elsewhere_stops_working_within_the_cache_time(
    settings: Settings, migrated: dict[Role, str]
) -> None:
    quick = settings.model_copy(update={"auth": settings.auth.model_copy(update={"token_cache_seconds": 0.5})})
    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            created = await auth_service.create_token(session, spec=TokenSpec(name="elsewhere", role=Role.viewer))
        bearer = {"Authorization": f"Bearer {created.token}"}
        with (
            live_server(create_app(quick, run_worker=False)) as url,
            httpx.Client(base_url=url, headers=bearer) as http,
        ):
            assert http.get("/api/projects").status_code == 200
            async with db.transaction() as session:  # as the CLI would, from another process
                await auth_service.revoke_token(session, token_id=created.id)
            assert http.get("/api/projects").status_code == 200  # still remembered, for at most 0.5 s
            await asyncio.sleep(0.6)
            assert http.get("/api/projects").status_code == 401
    finally:
        await db.dispose()
