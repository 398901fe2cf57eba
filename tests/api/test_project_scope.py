"""A credential limited to one project, on the routes whose path names no project: it sees and acts on its own
project's pipelines, figures and webhook deliveries, gets 403 naming its project when it asks for another, and 404
(the very answer for a missing record) for another project's pipeline or delivery."""

from __future__ import annotations

import importlib
import json
import pkgutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import SecretStr

from taskmaster.api import routes
from taskmaster.app import create_app
from taskmaster.auth import service as auth_service
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.config import Settings
from taskmaster.db.session import Database
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.webhooks import service
from tests.api.conftest import Api
from tests.api.test_pipelines_api import add_project, create, read_events, run
from tests.api.test_webhooks import add_project as add_forge_project
from tests.api.test_webhooks import github_headers
from tests.forges.fixtures import payload_bytes
from tests.support import live_server


def hello(project: str) -> str:
    return f'steps:\n  hello: {{run: "echo hello from {project}"}}\n'


PROBLEM_JSON = "application/problem+json"


async def scoped_token(settings: Settings, project_id: str | uuid.UUID, role: Role) -> str:
    """An API token limited to `project_id`, made by the auth service as `taskmaster token create` does."""
    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            spec = TokenSpec(
                name=f"{role.value}-{uuid.uuid4().hex[:8]}", role=role, project_id=uuid.UUID(str(project_id))
            )
            return (await auth_service.create_token(session, spec=spec)).token
    finally:
        await db.dispose()


def bearer(api: Api, token: str) -> httpx.Client:
    return api.client(Authorization=f"Bearer {token}")


def limited_to(project_id: str) -> str:
    return f"the credential is limited to project {project_id}"


@dataclass
class Scope:
    """Two projects, `mine` (two pipelines) and `theirs` (one), and tokens limited to `mine`."""

    mine: str
    theirs: str
    mine_pipelines: list[str]
    their_pipeline: str
    viewer: str
    developer: str


@pytest.fixture
async def scope(api: Api, tmp_path: Path) -> Scope:
    mine, _ = add_project(api, tmp_path, "mine", hello("mine"))
    theirs, _ = add_project(api, tmp_path, "theirs", hello("theirs"))
    made = [create(api, "mine")["id"], create(api, "theirs")["id"], create(api, "mine")["id"]]
    return Scope(
        mine=mine,
        theirs=theirs,
        mine_pipelines=[made[0], made[2]],
        their_pipeline=made[1],
        viewer=await scoped_token(api.settings, mine, Role.viewer),
        developer=await scoped_token(api.settings, mine, Role.developer),
    )


def assert_hidden(response: httpx.Response, missing: httpx.Response, hidden_id: str, missing_id: str) -> None:
    """Another project's record answers as a missing one does: same status, title and wording."""
    assert response.status_code == missing.status_code == 404
    assert response.headers["content-type"] == missing.headers["content-type"] == PROBLEM_JSON
    hidden_body, missing_body = response.json(), missing.json()
    assert hidden_body["title"] == missing_body["title"]
    assert hidden_body["detail"].replace(hidden_id, "<id>") == missing_body["detail"].replace(missing_id, "<id>")


def test_the_list_holds_only_the_credentials_project_and_asking_for_another_is_403(api: Api, scope: Scope) -> None:
    with bearer(api, scope.viewer) as http:
        page = http.get("/api/pipelines")
        assert page.status_code == 200, page.text
        assert page.json()["total"] == 2
        assert [p["id"] for p in page.json()["items"]] == list(reversed(scope.mine_pipelines))
        assert {p["project_id"] for p in page.json()["items"]} == {scope.mine}
        by_name = http.get("/api/pipelines", params={"project": "mine", "limit": 1}).json()
        assert (by_name["total"], [p["id"] for p in by_name["items"]]) == (2, [scope.mine_pipelines[1]])
        assert http.get("/api/pipelines", params={"project": scope.mine}).json()["total"] == 2
        assert http.get("/api/pipelines", params={"status": "pending"}).json()["total"] == 2
        for other in ("theirs", scope.theirs, "nowhere"):  # an unknown name too: the answer tells nothing
            refused = http.get("/api/pipelines", params={"project": other})
            assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM_JSON
            assert refused.json()["detail"] == limited_to(scope.mine)
            assert refused.json()["title"] == "Permission denied"
    with api.client(Role.viewer) as http:  # an unlimited credential still sees everything
        assert http.get("/api/pipelines").json()["total"] == 3


async def test_show_status_and_logs_answer_for_its_own_pipelines_and_404_for_others(
    api: Api, scope: Scope, reachable_dir: Path
) -> None:
    own = scope.mine_pipelines[0]
    assert await run(api, own, reachable_dir) is PipelineStatus.SUCCESS
    ghost = str(uuid.uuid4())
    with bearer(api, scope.viewer) as http:
        shown = http.get(f"/api/pipelines/{own}")
        assert shown.status_code == 200, shown.text
        assert (shown.json()["project_id"], shown.json()["status"]) == (scope.mine, "success")
        assert [s["name"] for s in shown.json()["steps"]] == ["hello"]
        state = http.get(f"/api/pipelines/{own}/status").json()
        assert (state["status"], state["steps"]) == ("success", {"hello": "success"})
        text = http.get(f"/api/pipelines/{own}/logs", headers={"Accept": "text/plain"})
        assert text.status_code == 200 and text.text == "--- hello (attempt 1) ---\nhello from mine\n"
        for suffix in ("", "/status", "/logs"):
            hidden = http.get(f"/api/pipelines/{scope.their_pipeline}{suffix}")
            missing = http.get(f"/api/pipelines/{ghost}{suffix}")
            assert_hidden(hidden, missing, scope.their_pipeline, ghost)
            assert hidden.json()["detail"] == f"pipeline {scope.their_pipeline} does not exist"
        with http.stream("GET", f"/api/pipelines/{scope.their_pipeline}/logs", params={"follow": "true"}) as hidden:
            assert hidden.status_code == 404  # no stream is opened for it
    events = read_events(api, own)  # the SSE stream of its own pipeline (as a global viewer, for comparison)
    with bearer(api, scope.viewer) as http, http.stream("GET", f"/api/pipelines/{own}/logs") as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    assert [e.json["content"] for e in events] == ["hello from mine\n"]
    assert json.dumps(events[0].json) in body


def test_create_runs_only_for_its_own_project(api: Api, scope: Scope) -> None:
    with bearer(api, scope.developer) as http:
        by_name = http.post("/api/pipelines", json={"project": "mine", "ref": "main"})
        assert by_name.status_code == 201, by_name.text
        assert (by_name.json()["project_id"], by_name.json()["status"]) == (scope.mine, "pending")
        by_id = http.post("/api/pipelines", json={"project": scope.mine, "ref": "main"})
        assert by_id.status_code == 201 and by_id.json()["project_id"] == scope.mine
        for other in ("theirs", scope.theirs, "ghost"):
            refused = http.post("/api/pipelines", json={"project": other, "ref": "main"})
            assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM_JSON
            assert refused.json()["detail"] == limited_to(scope.mine)
    with bearer(api, scope.viewer) as http:  # the role still counts
        low = http.post("/api/pipelines", json={"project": "mine", "ref": "main"})
        assert low.status_code == 403 and "developer role" in low.json()["detail"]
    with api.client(Role.viewer) as http:
        assert http.get("/api/pipelines", params={"project": "theirs"}).json()["total"] == 1
        assert http.get("/api/pipelines", params={"project": "mine"}).json()["total"] == 4


def test_cancel_and_retry_act_on_its_own_pipelines_and_404_on_others(api: Api, scope: Scope) -> None:
    own, theirs, ghost = scope.mine_pipelines[0], scope.their_pipeline, str(uuid.uuid4())
    with bearer(api, scope.developer) as http:
        for action in ("cancel", "retry"):
            # Their pipeline is pending: a retry would be a 409 for anyone who may see it.
            hidden = http.post(f"/api/pipelines/{theirs}/{action}")
            assert_hidden(hidden, http.post(f"/api/pipelines/{ghost}/{action}"), theirs, ghost)
        canceled = http.post(f"/api/pipelines/{own}/cancel", json={"reason": "mine to stop"})
        assert canceled.status_code == 200, canceled.text
        assert (canceled.json()["status"], canceled.json()["error_message"]) == ("canceled", "mine to stop")
        retried = http.post(f"/api/pipelines/{own}/retry")
        assert retried.status_code == 201, retried.text
        assert (retried.json()["project_id"], retried.json()["trigger_event"]) == (scope.mine, "retry")
    with api.client(Role.viewer) as http:
        assert http.get(f"/api/pipelines/{theirs}/status").json()["status"] == "pending"  # untouched
        assert http.get("/api/pipelines", params={"project": "theirs"}).json()["total"] == 1


def test_a_jwt_with_a_project_claim_is_confined_the_same_way(api: Api, scope: Scope) -> None:
    key = "a-test-signing-key-long-enough-for-hs256"
    auth = api.settings.auth.model_copy(update={"jwt_secret": SecretStr(key)})
    settings = api.settings.model_copy(update={"auth": auth})
    claims = {"sub": "ci", "role": "viewer", "project": scope.mine, "exp": int(time.time()) + 300}
    headers = {"Authorization": f"Bearer {jwt.encode(claims, key, algorithm='HS256')}"}
    with (
        live_server(create_app(settings, run_worker=False)) as url,
        httpx.Client(base_url=url, headers=headers) as http,
    ):
        listed = http.get("/api/pipelines").json()
        assert {p["id"] for p in listed["items"]} == set(scope.mine_pipelines)
        refused = http.get("/api/pipelines", params={"project": "theirs"})
        assert refused.status_code == 403 and refused.json()["detail"] == limited_to(scope.mine)
        assert http.get(f"/api/pipelines/{scope.their_pipeline}").status_code == 404
        # Routes with the project in their path keep checking it.
        assert http.get(f"/api/projects/{scope.mine}").status_code == 200
        assert http.get(f"/api/projects/{scope.theirs}").status_code == 403


def deliver(api: Api, repository: str) -> str:
    """A signed pull request delivery for `repository`, stored by the real receiver; returns its id."""
    payload = json.loads(payload_bytes("github/pull_request/opened"))
    payload["repository"]["full_name"] = repository
    body = json.dumps(payload).encode()
    with api.client() as http:
        response = http.post("/webhooks/github", content=body, headers=github_headers(body, "pull_request"))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_webhook_deliveries_are_listed_shown_and_redelivered_only_for_its_project(api: Api) -> None:
    mine = await add_forge_project(api.settings, "github", "Codertocat/Hello-World")
    await add_forge_project(api.settings, "github", "Octo/Elsewhere")
    own, theirs, ghost = deliver(api, "Codertocat/Hello-World"), deliver(api, "Octo/Elsewhere"), str(uuid.uuid4())
    db = Database.from_settings(api.settings)
    try:
        while await service.process_next(db, api.settings):
            pass
    finally:
        await db.dispose()
    viewer = await scoped_token(api.settings, mine.id, Role.viewer)
    admin = await scoped_token(api.settings, mine.id, Role.admin)
    with bearer(api, viewer) as http:
        page = http.get("/api/webhooks/deliveries")
        assert page.status_code == 200, page.text
        assert (page.json()["total"], [d["id"] for d in page.json()["items"]]) == (1, [own])
        assert page.json()["items"][0]["project_id"] == str(mine.id)
        assert http.get("/api/webhooks/deliveries", params={"status": "processed"}).json()["total"] == 1
        shown = http.get(f"/api/webhooks/deliveries/{own}")
        assert shown.status_code == 200 and json.loads(shown.json()["body"])["repository"]["full_name"] == (
            "Codertocat/Hello-World"
        )
        hidden = http.get(f"/api/webhooks/deliveries/{theirs}")
        assert_hidden(hidden, http.get(f"/api/webhooks/deliveries/{ghost}"), theirs, ghost)
        assert hidden.json()["detail"] == f"webhook delivery {theirs} does not exist"
        assert http.post(f"/api/webhooks/deliveries/{own}/redeliver").status_code == 403  # viewer
    with bearer(api, admin) as http:
        hidden = http.post(f"/api/webhooks/deliveries/{theirs}/redeliver")
        assert_hidden(hidden, http.post(f"/api/webhooks/deliveries/{ghost}/redeliver"), theirs, ghost)
        again = http.post(f"/api/webhooks/deliveries/{own}/redeliver")
        assert again.status_code == 200 and (again.json()["id"], again.json()["status"]) == (own, "received")
    with api.client(Role.viewer) as http:
        everything = http.get("/api/webhooks/deliveries").json()
        assert everything["total"] == 2
        assert {d["id"]: d["status"] for d in everything["items"]} == {own: "received", theirs: "processed"}


def test_the_routes_that_confine_a_limited_credential_themselves_are_exactly_these() -> None:
    """A route admits a limited credential without `{project_id}` in its path only on purpose: adding one means
    confining it in the route, then listing it here."""
    confining: set[str] = set()
    for module in pkgutil.iter_modules(routes.__path__):
        for router in vars(importlib.import_module(f"{routes.__name__}.{module.name}")).values():
            if not isinstance(router, APIRouter):
                continue
            for route in router.routes:
                assert isinstance(route, APIRoute)
                if any(getattr(d.call, "route_confines", False) for d in route.dependant.dependencies):
                    confining |= {f"{method} {route.path}" for method in route.methods or ()}
    assert confining == {
        "GET /api/pipelines", "POST /api/pipelines", "GET /api/pipelines/{pipeline_id}",
        "GET /api/pipelines/{pipeline_id}/status", "GET /api/pipelines/{pipeline_id}/logs",
        "POST /api/pipelines/{pipeline_id}/cancel", "POST /api/pipelines/{pipeline_id}/retry",
        "GET /api/metrics/pipelines", "GET /api/metrics/costs", "GET /api/webhooks/deliveries",
        "GET /api/webhooks/deliveries/{delivery_id}",
        "POST /api/webhooks/deliveries/{delivery_id}/redeliver", "GET /api/projects",
        "GET /api/codegen-runs", "GET /api/codegen-runs/{run_id}", "POST /api/codegen-runs/{run_id}/cancel",
    }  # fmt: skip
