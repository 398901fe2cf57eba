"""`taskmaster mcp` as a real process: stdio, and streamable HTTP on loopback with Taskmaster tokens and roles."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from taskmaster.auth import service as auth_service
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.core.clock import utcnow
from taskmaster.db import migrate
from taskmaster.db.models import ApiToken
from taskmaster.db.session import Database
from taskmaster.tasks import service as tasks
from tests.cli.conftest import clean_env
from tests.conftest import make_settings
from tests.mcp.conftest import READY_ORDER, TOOLS, error_text, payload, seed_project, server_command, stdio_parameters
from tests.support import free_port


async def test_stdio_server_migrates_its_database_and_serves_an_agent(tmp_path: Path) -> None:
    async with Client(stdio_parameters(tmp_path), read_timeout_seconds=30) as client:
        # Only what it has: no resources or prompts for the client to offer its model.
        capabilities = client.server_capabilities
        assert capabilities.tools is not None and capabilities.resources is None and capabilities.prompts is None
        tools = (await client.list_tools()).tools
        assert {tool.name for tool in tools} == TOOLS
        assert all(tool.description and "\n    " not in tool.description for tool in tools)
        # The embedded database did not exist: the server created and migrated it before answering.
        assert payload(await client.call_tool("list_projects", {})) == {"items": []}
        settings = make_settings(tmp_path / "state")
        db = Database.from_settings(settings)
        try:
            ids = await seed_project(db, settings)
        finally:
            await db.dispose()
        chosen = payload(await client.call_tool("next_task", {}))["task"]
        assert (chosen["number"], chosen["id"], chosen["title"]) == (1, ids[1], "Schema")
        claimed = payload(await client.call_tool("claim_task", {"assignee": "agent-1", "details": True}))["task"]
        assert claimed["id"] == ids[1] and claimed["assignee"] == "agent-1" and claimed["lease_expires_at"]
        cycle = error_text(await client.call_tool("add_dependency", {"task": 1, "depends_on": 2}))
        assert cycle.endswith("that dependency would create a cycle: #1 -> #2 -> #1")
        payload(await client.call_tool("set_task_status", {"task": 1, "status": "done"}))
        ready = payload(await client.call_tool("ready_tasks", {}))["items"]
        assert [t["number"] for t in ready] == [2, 4, 7, 3]
        assert payload(await client.call_tool("validate_dependencies", {}))["ok"] is True


@dataclass
class HttpServer:
    url: str
    home: Path
    tokens: dict[str, str]
    projects: dict[str, str]

    @asynccontextmanager
    async def connect(self, token: str) -> AsyncIterator[Client]:
        """The SDK's client over streamable HTTP, sending the named token."""
        headers = {"Authorization": f"Bearer {self.tokens[token]}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            Client(streamable_http_client(self.url, http_client=http)) as client,
        ):
            yield client


async def _prepare_home(state: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Three seeded projects; a viewer and a developer token, one limited to `private`, and a revoked one."""
    settings = make_settings(state)
    db = Database.from_settings(settings)
    try:
        await migrate.upgrade(db)
        for name in ("app", "race", "private"):
            await seed_project(db, settings, name)
        tokens: dict[str, str] = {}
        async with db.transaction() as session:
            found = {name: await tasks.get_project(session, name) for name in ("app", "race", "private")}
            specs = {
                "viewer": TokenSpec(name="viewer", role=Role.viewer),
                "developer": TokenSpec(name="developer", role=Role.developer),
                "limited": TokenSpec(name="limited", role=Role.developer, project_id=found["private"].id),
                "revoked": TokenSpec(name="revoked", role=Role.admin),
                "expired": TokenSpec(name="expired", role=Role.admin),
            }
            for key, spec in specs.items():
                created = await auth_service.create_token(session, spec=spec)
                tokens[key] = created.token
                if key == "revoked":
                    await auth_service.revoke_token(session, token_id=created.id)
                if key == "expired":
                    row = await session.get(ApiToken, created.id)
                    assert row is not None
                    row.expires_at = utcnow() - timedelta(minutes=1)
        return tokens, {name: str(project.id) for name, project in found.items()}
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """`taskmaster mcp --http` on a free loopback port, over a prepared embedded database."""
    home = tmp_path_factory.mktemp("mcp-http")
    # A thread of its own: the test's event loop must not be disturbed by a second one in this thread.
    with ThreadPoolExecutor(1) as pool:
        tokens, projects = pool.submit(asyncio.run, _prepare_home(home / "state")).result()
    port = free_port()
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server_command("--http", "--port", str(port)),
            cwd=home,
            env=clean_env(TASKMASTER_HOME=str(home / "state"), TASKMASTER_ENV="test"),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process, log_path)
        yield HttpServer(url=f"http://127.0.0.1:{port}/mcp", home=home, tokens=tokens, projects=projects)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log_path.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"the server did not listen within 30 s:\n{log_path.read_text()}")


async def test_http_refuses_calls_without_a_valid_taskmaster_token(http_server: HttpServer) -> None:
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"Accept": "application/json, text/event-stream"}
    revoked, expired = http_server.tokens["revoked"], http_server.tokens["expired"]
    credentials = {
        "no bearer token: send 'Authorization: Bearer <token>'": {},
        "unknown API token": {"Authorization": "Bearer tm_unknown"},
        f"API token {revoked[:10]}… was revoked": {"Authorization": f"Bearer {revoked}"},
        f"API token {expired[:10]}… expired at ": {"Authorization": f"Bearer {expired}"},
    }
    async with httpx.AsyncClient(timeout=10) as http:
        for reason, headers in credentials.items():
            response = await http.post(http_server.url, json=request, headers=accept | headers)
            assert response.status_code == 401
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith(f'Bearer error="invalid_token", error_description="{reason}')
            assert response.json()["error_description"].startswith(reason)


async def test_http_roles_follow_the_rest_api_and_reach_the_audit_log(http_server: HttpServer) -> None:
    async with http_server.connect("viewer") as viewer:
        assert {tool.name for tool in (await viewer.list_tools()).tools} == TOOLS
        several = error_text(await viewer.call_tool("next_task", {}))
        assert "several projects exist (app, private, race)" in several
        assert payload(await viewer.call_tool("next_task", {"project": "app"}))["task"]["title"] == "Schema"
        denied = error_text(await viewer.call_tool("add_task", {"title": "Not mine", "project": "app"}))
        assert denied.endswith("this needs the developer role; the credential has viewer")
    async with http_server.connect("developer") as developer:
        added = payload(await developer.call_tool("add_task", {"title": "From an agent", "project": "app"}))
        assert added["number"] == 8
    with sqlite3.connect(http_server.home / "state" / "taskmaster.db") as conn:
        query = "select actor from audit_events where action = 'task.create' and data like '%From an agent%'"
        actors = conn.execute(query).fetchall()
    assert actors == [("token:developer",)]


async def test_http_token_limited_to_a_project_keeps_to_it(http_server: HttpServer) -> None:
    async with http_server.connect("limited") as client:
        assert [p["name"] for p in payload(await client.call_tool("list_projects", {}))["items"]] == ["private"]
        # The project may be left out: the credential names it.
        chosen = payload(await client.call_tool("next_task", {"details": True}))["task"]
        assert chosen["project_id"] == http_server.projects["private"]
        refused = error_text(await client.call_tool("list_tasks", {"project": "app"}))
        assert refused.endswith(f"the credential is limited to project {http_server.projects['private']}")
        race = http_server.projects["race"]
        refused = error_text(await client.call_tool("claim_task", {"assignee": "a", "project": race}))
        assert "limited to project" in refused


async def test_two_http_clients_claiming_at_once_get_different_tasks(http_server: HttpServer) -> None:
    async with http_server.connect("developer") as first, http_server.connect("developer") as second:
        clients = [first, second] * 3
        results = await asyncio.gather(
            *(c.call_tool("claim_task", {"assignee": f"agent-{n}", "project": "race"}) for n, c in enumerate(clients))
        )
    picks = [payload(result)["task"] for result in results]
    assert sorted(task["number"] for task in picks if task) == sorted(READY_ORDER)
    assert picks.count(None) == len(clients) - len(READY_ORDER)
