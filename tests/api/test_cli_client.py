"""`taskmaster task next|claim` as a client of a running server (TASKMASTER_URL): the same answers as the database
path, without opening the database."""

from __future__ import annotations

import json
import subprocess

from taskmaster.auth.schemas import Role
from tests.api.conftest import Api
from tests.cli.conftest import TASKMASTER, clean_env


def _cli(api: Api, *args: str, token: str | None = None, remote: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"TASKMASTER_HOME": str(api.settings.state_dir)}
    if remote:
        env |= {"TASKMASTER_URL": api.url, "TASKMASTER_TOKEN": token or api.tokens[Role.developer]}
        # Nothing to reach the database with: the answers must come from the server.
        env["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/nothing"
    elif not api.settings.embedded:
        env["DATABASE_URL"] = api.settings.database_url.replace("postgresql+asyncpg", "postgresql")
    return subprocess.run([TASKMASTER, *args], env=clean_env(**env), capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip


def test_next_and_claim_through_the_api_match_the_database_path(api: Api) -> None:
    with api.client(Role.admin) as http:
        assert http.post("/api/projects", json={"name": "app", "repository": "/app"}).status_code == 201
        first = http.post("/api/projects/app/tasks", json={"title": "Schema", "priority": 1}).json()
        http.post("/api/projects/app/tasks", json={"title": "API", "priority": 2, "dependencies": [first["id"]]})

    remote = _cli(api, "task", "next", "--json")
    assert remote.returncode == 0, remote.stderr
    direct = _cli(api, "task", "next", "-p", "app", "--json", remote=False)
    assert direct.returncode == 0, direct.stderr
    assert json.loads(remote.stdout) == json.loads(direct.stdout)
    assert json.loads(remote.stdout)["title"] == "Schema"

    claimed = _cli(api, "task", "claim", "--assignee", "agent-1", "-p", "app", "--json")
    assert claimed.returncode == 0, claimed.stderr
    taken = json.loads(claimed.stdout)
    assert (taken["id"], taken["status"], taken["assignee"]) == (first["id"], "in_progress", "agent-1")
    nothing = _cli(api, "task", "claim", "--assignee", "agent-2", "-p", "app", "--json")
    assert nothing.returncode == 1 and json.loads(nothing.stdout) is None  # "API" waits for "Schema"

    viewer = _cli(api, "task", "claim", "--assignee", "x", "-p", "app", token=api.tokens[Role.viewer])
    assert viewer.returncode == 1 and "403" in viewer.stderr
    unknown = _cli(api, "task", "next", "-p", "nope")
    assert unknown.returncode == 1 and "404" in unknown.stderr and "nope" in unknown.stderr
