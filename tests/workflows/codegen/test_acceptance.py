"""Issue 13's first acceptance item through the real `taskmaster` command: a PRD parsed offline becomes tasks, a
scripted terminal agent run by our AgentAPI server (sandboxed) writes two of them, their PRs open on the fake GitHub
or the local forge, validation pipelines start, a merge marks the task done and the next task becomes ready."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from taskmaster.config import Settings
from taskmaster.db.models import Pipeline, WebhookDelivery
from taskmaster.db.session import Database
from taskmaster.webhooks import service as webhooks
from tests.cli.conftest import TASKMASTER, clean_env
from tests.support import commit, git
from tests.support.databases import make_settings

pytestmark = pytest.mark.slow

AGENT = Path(__file__).parent / "terminal_agent.py"
SECRET = "acceptance-webhook-secret"
PRD = """# Notes app

## Storage schema
The service must store notes in a table with a title and a body.

Acceptance criteria:
- a note has a title and a body
- notes are kept across restarts

## Notes API
The service must expose the notes through an HTTP API. The API depends on the storage schema.

## User guide
The documentation should explain how to use notes.
"""
READY = {1: "taskmaster/1-implement-storage-schema", 3: "taskmaster/3-implement-user-guide"}


@dataclass
class Cli:
    """The real `taskmaster` command with one state directory."""

    home: Path
    workdir: Path

    @property
    def env(self) -> dict[str, str]:
        return {"TASKMASTER_HOME": str(self.home / "state"), "COLUMNS": "200"}

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TASKMASTER, *args], cwd=self.workdir, env=clean_env(**self.env), capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def json(self, *args: str) -> Any:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    @property
    def settings(self) -> Settings:
        return make_settings(state_dir=self.home / "state")


@pytest.fixture
def cli(reachable_dir: Path) -> Cli:
    """State, workspaces and the agent's install under a directory the sandbox user can reach."""
    workdir = reachable_dir / "work"
    workdir.mkdir()
    (workdir / "prd.md").write_text(PRD)
    made = Cli(reachable_dir, workdir)
    assert made("db", "migrate").returncode == 0
    return made


@pytest.fixture
def agent_command(reachable_dir: Path) -> str:
    """The terminal agent installed outside the toolchain, as npm or a venv would install a CLI."""
    target = reachable_dir / "agent-cli" / "terminal-agent"
    target.parent.mkdir()
    shutil.copy(AGENT, target)
    target.chmod(0o755)
    target.parent.chmod(0o755)
    return str(target)


def codegen_run(cli: Cli, agent_command: str, *options: str) -> subprocess.CompletedProcess[str]:
    return cli("codegen", "run", "-p", "app", *options, "--agent", "agentapi", "--agent-type", "custom",
               "--agent-command", agent_command, timeout=180)  # fmt: skip


def parse_prd(cli: Cli) -> None:
    parsed = cli("prd", "parse", "-p", "app", "prd.md")
    assert parsed.returncode == 0, parsed.stderr
    listed = cli.json("task", "list", "-p", "app")
    items = listed["items"] if isinstance(listed, dict) else listed
    ids = {t["id"]: t["number"] for t in items}
    assert [(t["number"], t["status"], [ids[d] for d in t["dependencies"]]) for t in items] == [
        (1, "pending", []), (2, "pending", [1]), (3, "pending", [])
    ]  # fmt: skip


def drain(settings: Settings) -> list[WebhookDelivery]:
    """The webhook loop's work: every stored delivery processed; returns them all."""

    async def go() -> list[WebhookDelivery]:
        db = Database.from_settings(settings)
        try:
            while await webhooks.process_next(db, settings):
                pass
            async with db.session() as session:
                return list((await session.scalars(select(WebhookDelivery))).all())
        finally:
            await db.dispose()

    return asyncio.run(go())


def pipelines(settings: Settings) -> list[Pipeline]:
    async def go() -> list[Pipeline]:
        db = Database.from_settings(settings)
        try:
            async with db.session() as session:
                return list((await session.scalars(select(Pipeline))).all())
        finally:
            await db.dispose()

    return asyncio.run(go())


def statuses(cli: Cli) -> dict[int, str]:
    listed = cli.json("task", "list", "-p", "app")
    return {t["number"]: t["status"] for t in (listed["items"] if isinstance(listed, dict) else listed)}


def test_a_local_project_gets_two_pull_requests_validated_and_a_merge_makes_the_next_task_ready(
    cli: Cli, agent_command: str
) -> None:
    repo = cli.home / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, ".taskmaster.yml", "steps:\n  test: {run: 'true'}\n")
    assert cli("project", "add", "app", "--repo", str(repo), "--forge", "local").returncode == 0
    parse_prd(cli)

    ran = codegen_run(cli, agent_command, "--next", "2")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "2 codegen runs" in ran.stdout and "agentapi:custom" in ran.stdout
    pulls = {p["number"]: p for p in cli.json("pr", "list", "-p", "app")}
    assert sorted(p["head_ref"] for p in pulls.values()) == sorted(READY.values())
    for pull in pulls.values():
        number = int(pull["head_ref"].split("/")[1].split("-")[0])
        assert (pull["state"], pull["base_ref"], pull["forge"]) == ("open", "main", "local")
        assert pull["head_sha"] == git(repo, "rev-parse", pull["head_ref"])
        # What the agent wrote, committed with the task's trailer.
        assert git(repo, "show", f"{pull['head_ref']}:notes/task-{number}.md").startswith("# Implement")
        assert f"Taskmaster-Task: app#{number}" in git(repo, "log", "-1", "--format=%B", pull["head_ref"])
    schema = next(p for p in pulls.values() if p["head_ref"] == READY[1])
    # The offline planner files a section's "Acceptance criteria" list as the task's test strategy.
    assert "## Test strategy\n\n- a note has a title and a body" in schema["body"]
    assert "- notes are kept across restarts" in schema["body"]
    assert statuses(cli) == {1: "review", 2: "pending", 3: "review"}

    # The local forge's deliveries, processed by the webhook loop, start one validation pipeline per PR head.
    deliveries = drain(cli.settings)
    assert sorted((d.provider, d.action, d.status) for d in deliveries) == [("local", "opened", "processed")] * 2
    started = pipelines(cli.settings)
    assert sorted(str(p.commit_sha) for p in started) == sorted(p["head_sha"] for p in pulls.values())
    assert len({p.pull_request_id for p in started}) == 2 and None not in {p.pull_request_id for p in started}
    before = cli("task", "next", "-p", "app")
    assert "#2" not in before.stdout, before.stdout  # task 2 waits on task 1
    merged = cli("pr", "merge", "-p", "app", str(schema["number"]))
    assert merged.returncode == 0, merged.stderr
    drain(cli.settings)
    assert statuses(cli) == {1: "done", 2: "pending", 3: "review"}
    assert git(repo, "show", "main:notes/task-1.md").startswith("# Implement storage schema")
    assert (repo / "notes" / "task-1.md").read_text().startswith("# Implement storage schema")  # checked out
    nxt = cli.json("task", "next", "-p", "app")
    assert nxt["number"] == 2, nxt
