"""Issue 13's first acceptance item through the real `taskmaster` command: a PRD parsed offline becomes tasks, a
scripted terminal agent run by our AgentAPI server (sandboxed) writes two of them, their PRs open on the fake GitHub
or the local forge, validation pipelines start, a merge marks the task done and the next task becomes ready."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from taskmaster.app import create_app
from taskmaster.config import Settings
from taskmaster.db.models import Pipeline, Project, WebhookDelivery
from taskmaster.db.session import Database
from taskmaster.secrets import SecretBox
from taskmaster.webhooks import service as webhooks
from tests.cli.conftest import TASKMASTER, clean_env
from tests.forges.fakes import github as fake_github
from tests.forges.fakes.github import FakeGitHub, serve_github
from tests.forges.fixtures import payload
from tests.support import codegen_server, commit, git, install_agent, live_server
from tests.support.codegen_server import Fail, FakeRun, RunScript, serve_codegen
from tests.support.databases import make_settings
from tests.workflows.codegen.conftest import make_remote

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
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {"TASKMASTER_HOME": str(self.home / "state"), "COLUMNS": "200", **self.extra}

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
    return install_agent(reachable_dir / "agent-cli", "terminal-agent", AGENT)


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
    # The offline planner keeps a section's "Acceptance criteria" list: the body lists it once, as the criteria.
    assert (
        "## Acceptance criteria\n\n- [ ] a note has a title and a body\n- [ ] notes are kept across restarts"
        in schema["body"]
    )
    assert "## Test strategy" not in schema["body"]
    assert (
        "## What the agent did (agentapi:custom)\n\nWrote notes/task-1.md for Implement storage schema"
        in (schema["body"])
    )
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


@pytest.fixture
def github() -> Iterator[tuple[str, FakeGitHub]]:
    with serve_github() as server:
        yield server


def add_github_project(cli: Cli, url: str) -> Path:
    """Project `app` on the fake GitHub as acme/api, its pushes going to a bare repository; returns that remote."""
    remote = make_remote(cli.home)
    settings = cli.settings

    async def seed() -> None:
        db = Database.from_settings(settings)
        box = SecretBox.from_settings(settings)
        try:
            async with db.transaction() as session:
                project = Project(
                    name="app", repository=str(remote), forge="github", owner="acme", repo_name="api",
                    default_branch="main", forge_token=box.encrypt(fake_github.PERSONAL_TOKEN),
                    webhook_secret=box.encrypt(SECRET), settings={"forge_api_url": url},
                )  # fmt: skip
                session.add(project)
        finally:
            await db.dispose()

    asyncio.run(seed())
    return remote


def deliver(app_url: str, action: str, pull: dict[str, Any], *, merged: bool = False) -> None:
    """GitHub's `pull_request` webhook for `pull` (as the fake GitHub holds it), signed, to the app's endpoint."""
    name = {"opened": "opened", "closed": "closed_merged" if merged else "closed"}[action]
    body = copy.deepcopy(payload(f"github/pull_request/{name}"))
    body["number"] = body["pull_request"]["number"] = pull["number"]
    body["repository"]["full_name"], body["repository"]["name"] = "acme/api", "api"
    body["repository"]["owner"]["login"] = "acme"
    head, base = body["pull_request"]["head"], body["pull_request"]["base"]
    head["ref"], head["sha"] = pull["head"]["ref"], pull["head"]["sha"]
    base["ref"], base["sha"] = pull["base"]["ref"], pull["base"]["sha"]
    raw = json.dumps(body).encode()
    digest = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json", "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "4242", "X-Hub-Signature-256": f"sha256={digest}", "User-Agent": "GitHub-Hookshot/1a2b3c4",
    }  # fmt: skip
    answer = httpx.post(f"{app_url}/webhooks/github", content=raw, headers=headers, timeout=30)
    assert answer.status_code == 202, answer.text


def test_a_github_project_gets_two_pull_requests_validated_and_the_merged_webhook_makes_the_next_task_ready(
    cli: Cli, agent_command: str, github: tuple[str, FakeGitHub]
) -> None:
    url, fake = github
    remote = add_github_project(cli, url)
    parse_prd(cli)

    ran = codegen_run(cli, agent_command, "--next", "2")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    sent = [r.json for r in fake.requests if r.method == "POST" and r.path == "/repos/acme/api/pulls"]
    assert sorted((s["head"], s["base"]) for s in sent) == [(READY[1], "main"), (READY[3], "main")]
    schema = next(s for s in sent if s["head"] == READY[1])
    assert schema["title"] == "Implement storage schema (task #1)"
    assert schema["body"].startswith("The service must store notes in a table with a title and a body.")
    assert "- [ ] a note has a title and a body\n- [ ] notes are kept across restarts" in schema["body"]
    assert "Opened by Taskmaster for task app#1." in schema["body"]
    heads = set(git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").split())
    assert heads == {"main", *READY.values()}
    assert git(remote, "show", f"{READY[3]}:notes/task-3.md").startswith("# Implement user guide")
    assert statuses(cli) == {1: "review", 2: "pending", 3: "review"}

    auth = {"Authorization": f"token {fake_github.PERSONAL_TOKEN}"}
    listed = httpx.get(f"{url}/repos/acme/api/pulls", headers=auth, timeout=30)
    pulls = {p["head"]["ref"]: p for p in listed.json()}
    for ref, pull in pulls.items():  # the fake does not read git: GitHub's webhook carries the pushed commits
        pull["head"]["sha"] = git(remote, "rev-parse", ref)
        pull["base"]["sha"] = git(remote, "rev-parse", "main")
    with live_server(create_app(cli.settings, run_worker=False)) as app_url:
        for pull in pulls.values():
            deliver(app_url, "opened", pull)
        drain(cli.settings)
        started = pipelines(cli.settings)
        assert sorted(str(p.commit_sha) for p in started) == sorted(p["head"]["sha"] for p in pulls.values())
        assert None not in {p.pull_request_id for p in started}

        deliver(app_url, "closed", pulls[READY[1]], merged=True)
        [merged] = [d for d in drain(cli.settings) if d.action == "closed"]
    assert merged.status == "processed", merged.error
    assert merged.result["codegen"] == {"task": 1, "status": "done", "ready": [2]}
    assert statuses(cli) == {1: "done", 2: "pending", 3: "review"}
    assert cli.json("task", "next", "-p", "app")["number"] == 2


def test_bad_input_through_the_command_exits_2_or_1_with_a_clear_message_and_pushes_nothing(
    cli: Cli, agent_command: str, github: tuple[str, FakeGitHub]
) -> None:
    url, fake = github
    remote = add_github_project(cli, url)
    titles = ("Wipe the tree", "Wipe everything", "Link out of the checkout", "Escape the checkout", "Stay idle")
    for title in titles:
        assert cli("task", "add", "-p", "app", title, "--details", "Hostile on purpose.").returncode == 0

    missing = codegen_run(cli, "/nonexistent/agent-cli/agent", "--task", "1")
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "the agent command '/nonexistent/agent-cli/agent' is not installed" in missing.stderr
    unconfigured = cli("codegen", "run", "-p", "app", "--task", "1", "--agent", "codegen")
    assert unconfigured.returncode == 2 and "CODEGEN_API_KEY" in unconfigured.stderr, unconfigured.stderr
    assert "Traceback" not in missing.stderr + unconfigured.stderr
    assert cli.json("codegen", "list") == {"items": []}  # refused before anything was requested

    numbers = [str(n) for n in range(1, 6)]
    ran = codegen_run(cli, agent_command, *[arg for n in numbers for arg in ("--task", n)], "--json")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    runs = {r["task_number"]: r for r in json.loads(ran.stdout)["runs"]}
    assert {n: (r["status"], r["pull_request_number"]) for n, r in runs.items()} == {
        n: ("failed", None) for n in range(1, 6)
    }
    errors = {n: r["error"] for n, r in runs.items()}
    assert errors[1] == "check: the agent deleted the whole tree (4 files)", errors
    assert errors[2] == "check: the agent changed the checkout's git configuration", errors
    assert errors[3].startswith("check: ") and "secrets" in errors[3], errors
    # The sandbox kept the write out of the host: nothing changed inside, so nothing to commit.
    assert not list(cli.home.rglob("escaped.txt"))
    assert "empty" in errors[4] and "empty" in errors[5], errors
    heads = set(git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").split())
    assert heads == {"main"}
    assert not [r for r in fake.requests if r.method == "POST" and r.path.endswith("/pulls")]
    assert statuses(cli) == dict.fromkeys(range(1, 6), "pending")


def test_codegen_agent_runs_are_followed_through_rate_limits_and_their_pull_requests_linked_until_the_plan_ends(
    cli: Cli, github: tuple[str, FakeGitHub]
) -> None:
    url, fake_hub = github
    remote = add_github_project(cli, url)
    parse_prd(cli)
    pusher = cli.home / "codegen-side"
    git(cli.home, "clone", "-q", str(remote), str(pusher))
    auth = {"Authorization": f"token {fake_github.PERSONAL_TOKEN}"}

    def open_on_github(run: FakeRun, head: str) -> dict[str, Any]:
        """What Codegen does at the end of a run: push its branch and open the pull request on GitHub."""
        git(pusher, "checkout", "-q", "-B", head, "origin/main")
        commit(pusher, f"codegen/{run.id}.txt", f"run {run.id}\n")
        git(pusher, "push", "-q", "origin", head)
        opened = httpx.post(f"{url}/repos/acme/api/pulls", headers=auth, timeout=30,
                            json={"head": head, "base": "main", "title": "Codegen change"})  # fmt: skip
        assert opened.status_code == 201, opened.text
        return {"url": opened.json()["html_url"], "title": "Codegen change"}

    with serve_codegen() as fake:
        fake.open_pull_request = open_on_github
        repo_id = fake.add_repo("acme/api")  # the repository connected to the Codegen organisation
        fake.script(RunScript(statuses=["running", "COMPLETE"]), RunScript(statuses=["PENDING", "completed"]))
        fake.fail_next("create", Fail(429, headers={"Retry-After": "1"}), Fail(429))
        cli.extra = {"CODEGEN_API_KEY": codegen_server.API_KEY, "CODEGEN_ORG_ID": str(codegen_server.ORG_ID),
                     "CODEGEN_API_URL": fake.url}  # fmt: skip

        ran = cli("codegen", "run", "-p", "app", "--next", "2", "--agent", "codegen", "--json", timeout=240)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        runs = {r["task_number"]: r for r in json.loads(ran.stdout)["runs"]}
        assert {n: (r["status"], r["agent"]) for n, r in runs.items()} == {
            1: ("succeeded", "codegen"), 3: ("succeeded", "codegen")
        }  # fmt: skip
        creates = fake.sent(f"/v1/organizations/{codegen_server.ORG_ID}/agent/run", "POST")
        assert len(creates) == 4  # two refused with 429 (with and without Retry-After), then both runs
        assert all(r.headers["authorization"] == f"Bearer {codegen_server.API_KEY}" for r in creates)
        bodies = [r.body for r in creates if r.body is not None]
        made = sorted(re.findall(r"^# Task #(\d+): ", run.prompt, re.M)[0] for run in fake.runs.values())
        assert made == ["1", "3"]  # one Codegen run per task, whichever request the 429s met
        assert sorted(run.body["metadata"]["taskmaster_task"] for run in fake.runs.values()) == ["app#1", "app#3"]
        assert {b.get("repo_id") for b in bodies} == {repo_id}
        reads = [r for r in fake.requests if r.method == "GET" and "/agent/run/" in r.path]
        assert {int(r.path.rsplit("/", 1)[1]) for r in reads} == set(fake.runs)  # integer ids, each polled

        github_pulls = {p["number"]: p for p in httpx.get(f"{url}/repos/acme/api/pulls", headers=auth).json()}
        assert len(github_pulls) == 2
        linked = {p["number"]: p for p in cli.json("pr", "list", "-p", "app")}
        assert set(linked) == set(github_pulls)
        tasks = {t["number"]: t["id"] for t in cli.json("task", "list", "-p", "app")}
        assert {p["task_id"] for p in linked.values()} == {tasks[1], tasks[3]}
        assert {runs[1]["pull_request_number"], runs[3]["pull_request_number"]} == set(github_pulls)
        # Codegen opened them: Taskmaster opened none itself.
        mine = [r for r in fake_hub.requests if r.method == "POST" and r.path == "/repos/acme/api/pulls"]
        assert all(r.json["title"] == "Codegen change" for r in mine)
        assert statuses(cli) == {1: "review", 2: "pending", 3: "review"}

        assert cli("task", "add", "-p", "app", "Export notes").returncode == 0
        fake.plan_exhausted = True
        third = cli("codegen", "run", "-p", "app", "--task", "4", "--agent", "codegen", "--json", timeout=120)
        assert third.returncode == 1, third.stdout + third.stderr
        [refused] = json.loads(third.stdout)["runs"]
        assert refused["status"] == "failed" and "plan" in refused["error"], refused
        assert statuses(cli)[4] == "pending"
        assert len(fake.runs) == 2
