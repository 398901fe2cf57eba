"""`taskmaster codegen run|list|show|cancel`, run as the real command: usage and configuration errors exit 2 before
anything is stored; runs requested with `--detach` are listed, shown by id prefix and canceled; `--json` everywhere;
with `TASKMASTER_URL` the same commands go through a live server's REST API."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from taskmaster.app import create_app
from taskmaster.db.models import Project, PullRequest
from taskmaster.db.prefix import short_ids
from taskmaster.db.session import Database
from taskmaster.projects import service as projects
from taskmaster.secrets import SecretBox
from taskmaster.tasks import service as tasks
from taskmaster.workflows.codegen import merges
from taskmaster.workflows.codegen import service as codegen
from taskmaster.workspaces.cleanup import remove_tree_sync
from tests.cli.conftest import TASKMASTER, Runner, clean_env
from tests.forges.fakes import github as fake_github
from tests.forges.fakes.github import FakeGitHub, serve_github
from tests.support import commit, git, live_server
from tests.support.databases import make_settings
from tests.workflows.codegen.conftest import make_remote


@pytest.fixture
def home() -> Iterator[Path]:
    """A state directory the sandbox user can reach (workspaces live under it)."""
    path = Path(tempfile.mkdtemp(prefix="taskmaster-codegen-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        remove_tree_sync(path)


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return {"TASKMASTER_HOME": str(home / "state"), "COLUMNS": "200"}


def add_project(taskmaster_cli: Runner, env: dict[str, str], repo: Path, name: str = "app") -> None:
    """A local repository on main with a README, its project, and tasks 1-3 (task 2 waits on task 1)."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "README.md", "# app\n")
    assert taskmaster_cli("db", "migrate", env=env).returncode == 0
    added = taskmaster_cli("project", "add", name, "--repo", str(repo), "--forge", "local", env=env)
    assert added.returncode == 0, added.stderr
    for title, extra in (("Schema", []), ("API", ["--depends-on", "1"]), ("Docs", [])):
        made = taskmaster_cli("task", "add", "-p", name, title, "--details", f"Make {title}.", *extra, env=env)
        assert made.returncode == 0, made.stderr


def json_of(result: Any) -> Any:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_usage_and_configuration_errors_exit_2_and_request_nothing(
    taskmaster_cli: Runner, tmp_path: Path, env: dict[str, str]
) -> None:
    add_project(taskmaster_cli, env, tmp_path / "repo")
    refusals = [
        (["--task", "1", "--next", "2"], "give --task or --next, not both"),
        (["--agent", "gpt"], "--agent: Input should be 'offline', 'agentapi' or 'codegen'"),
        (["--agent-type", "vim"], "--agent-type: Input should be"),
        (["--next", "0"], "--next: Input should be greater than or equal to 1"),
        (["--agent-command", ""], "--agent-command: String should have at least 1 character"),
    ]
    for options, message in refusals:
        refused = taskmaster_cli("codegen", "run", "-p", "app", *options, env=env)
        assert refused.returncode == 2 and message in refused.stderr, (options, refused.stderr)
        assert "Traceback" not in refused.stderr
    ghost = taskmaster_cli("codegen", "run", "-p", "ghost", "--next", "1", env=env)
    assert ghost.returncode == 2 and "ghost" in ghost.stderr, ghost.stderr
    bad_ids = [("show", "zz"), ("show", "12"), ("cancel", "not-an-id")]
    for verb, ref in bad_ids:
        refused = taskmaster_cli("codegen", verb, ref, env=env)
        assert refused.returncode == 2 and f"not a codegen run id: {ref!r}" in refused.stderr, refused.stderr
    missing = taskmaster_cli("codegen", "show", "0123abcd", env=env)
    assert missing.returncode == 1 and "no codegen run id starts with '0123abcd'" in missing.stderr, missing.stderr
    bad_status = taskmaster_cli("codegen", "list", "--status", "done", env=env)
    assert bad_status.returncode == 2 and "--status must be one of" in bad_status.stderr
    assert "codegen" in taskmaster_cli("--help", env=env).stdout


def test_a_task_that_is_not_ready_exits_2_naming_it(
    taskmaster_cli: Runner, tmp_path: Path, env: dict[str, str]
) -> None:
    add_project(taskmaster_cli, env, tmp_path / "repo")
    refused = taskmaster_cli("codegen", "run", "-p", "app", "--task", "2", "--agent", "offline", env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "2" in refused.stderr and "Traceback" not in refused.stderr
    assert json_of(taskmaster_cli("codegen", "list", "--json", env=env)) == {"items": []}


def test_detached_runs_are_listed_shown_by_prefix_and_canceled(
    taskmaster_cli: Runner, tmp_path: Path, env: dict[str, str]
) -> None:
    add_project(taskmaster_cli, env, tmp_path / "repo")
    detached = taskmaster_cli("codegen", "run", "-p", "app", "--next", "5", "--agent", "offline", "--detach", env=env)
    assert detached.returncode == 0, detached.stderr
    ids = detached.stdout.split()
    assert len(ids) == 2  # tasks 1 and 3: task 2 waits on task 1

    listed = json_of(taskmaster_cli("codegen", "list", "-p", "app", "--json", env=env))["items"]
    assert {r["id"] for r in listed} == set(ids)
    assert {(r["task_number"], r["status"], r["stage"]) for r in listed} == {(1, "pending", "queued"),
                                                                           (3, "pending", "queued")}  # fmt: skip
    table = taskmaster_cli("codegen", "list", env=env)
    assert "2 codegen runs" in table.stdout and "Schema" in table.stdout and "Docs" in table.stdout

    # Runs requested together share their id's first 12 digits (UUIDv7's millisecond): the prefix a table shows.
    prefix = short_ids(ids)[0]
    shown = json_of(taskmaster_cli("codegen", "show", prefix, "--json", env=env))
    assert shown["id"] == ids[0] and shown["status"] == "pending" and "stages" in shown
    text = taskmaster_cli("codegen", "show", ids[0], env=env)
    assert text.returncode == 0 and f"codegen run {ids[0]}: pending" in text.stdout and "agent:" in text.stdout

    canceled = taskmaster_cli("codegen", "cancel", prefix, env=env)
    assert canceled.returncode == 0 and f"codegen run {ids[0]} canceled" in canceled.stdout, canceled.stderr
    pending = json_of(taskmaster_cli("codegen", "list", "--status", "pending", "--json", env=env))["items"]
    assert [r["id"] for r in pending] == [ids[1]]


def test_with_taskmaster_url_the_commands_go_through_the_rest_api(
    taskmaster_cli: Runner, tmp_path: Path, env: dict[str, str], home: Path
) -> None:
    add_project(taskmaster_cli, env, tmp_path / "repo")
    settings = make_settings(state_dir=home / "state")
    with live_server(create_app(settings, run_worker=False)) as url:
        remote = {**env, "TASKMASTER_URL": url}  # the local admin token file in the state directory is used
        started = taskmaster_cli(
            "codegen", "run", "-p", "app", "--task", "3", "--agent", "offline", "--detach", "--json", env=remote
        )
        runs = json_of(started)["runs"]
        assert [(r["task_number"], r["status"]) for r in runs] == [(3, "pending")]
        not_ready = taskmaster_cli("codegen", "run", "-p", "app", "--task", "2", env=remote)
        assert not_ready.returncode == 2 and "answered 422" in not_ready.stderr, not_ready.stderr
        ghost = taskmaster_cli("codegen", "run", "-p", "ghost", "--task", "1", env=remote)
        assert ghost.returncode == 2 and "answered 404" in ghost.stderr, ghost.stderr
        listed = json_of(taskmaster_cli("codegen", "list", "--json", env=remote))["items"]
        assert [r["id"] for r in listed] == [runs[0]["id"]]
        shown = json_of(taskmaster_cli("codegen", "show", runs[0]["id"][:13], "--json", env=remote))
        assert shown["task_title"] == "Docs"
        canceled = taskmaster_cli("codegen", "cancel", runs[0]["id"], env=remote)
        assert canceled.returncode == 0 and "canceled" in canceled.stdout, canceled.stderr


@dataclass
class GitHubProject:
    """A project on the fake GitHub whose pushes go to a bare repository; tasks 1-3 (task 2 waits on task 1)."""

    remote: Path
    fake: FakeGitHub


@pytest.fixture
def github() -> Iterator[tuple[str, FakeGitHub]]:
    with serve_github() as server:
        yield server


@pytest.fixture
def on_github(
    taskmaster_cli: Runner, env: dict[str, str], home: Path, tmp_path: Path, github: tuple[str, FakeGitHub]
) -> GitHubProject:
    url, fake = github
    assert taskmaster_cli("db", "migrate", env=env).returncode == 0
    remote = make_remote(tmp_path)
    settings = make_settings(state_dir=home / "state")

    async def seed() -> None:
        db = Database.from_settings(settings)
        try:
            async with db.transaction() as session:
                token = SecretBox.from_settings(settings).encrypt(fake_github.PERSONAL_TOKEN)
                project = Project(
                    name="app", repository=str(remote), forge="github", owner="acme", repo_name="api",
                    default_branch="main", forge_token=token, settings={"forge_api_url": url},
                )  # fmt: skip
                session.add(project)
        finally:
            await db.dispose()

    asyncio.run(seed())
    for title, extra in (("Schema", []), ("API", ["--depends-on", "1"]), ("Docs", [])):
        made = taskmaster_cli("task", "add", "-p", "app", title, "--details", f"Make {title}.", *extra, env=env)
        assert made.returncode == 0, made.stderr
    return GitHubProject(remote, fake)


def branches(remote: Path) -> set[str]:
    return set(git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").split())


def test_run_follows_each_task_to_its_pull_request_and_exits_0(
    taskmaster_cli: Runner, env: dict[str, str], on_github: GitHubProject
) -> None:
    ran = taskmaster_cli("codegen", "run", "-p", "app", "--next", "2", "--agent", "offline", env=env, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    # Progress lines: "  1.2s  #1    Schema    push    running"; then the table.
    lines = [line for line in ran.stdout.splitlines() if re.match(r"\s*\d+\.\ds  #", line)]
    for number, title in ((1, "Schema"), (3, "Docs")):
        mine = [line for line in lines if f"#{number} " in line and title in line]
        stages = [line.split()[3] for line in mine]
        assert {"push", "pull_request"} <= set(stages) or "done" in stages, mine
        assert mine[-1].split()[3:5] == ["done", "succeeded:"] and "PR #" in mine[-1], mine
    assert "2 codegen runs" in ran.stdout
    assert branches(on_github.remote) == {"main", "taskmaster/1-schema", "taskmaster/3-docs"}
    sent = [r.json for r in on_github.fake.requests if r.method == "POST" and r.path == "/repos/acme/api/pulls"]
    assert sorted((s["head"], s["base"]) for s in sent) == [("taskmaster/1-schema", "main"),
                                                           ("taskmaster/3-docs", "main")]  # fmt: skip

    listed = json_of(taskmaster_cli("codegen", "list", "--json", env=env))["items"]
    assert sorted((r["task_number"], r["status"], r["stage"]) for r in listed) == [(1, "succeeded", "done"),
                                                                                  (3, "succeeded", "done")]  # fmt: skip
    run_id = next(r["id"] for r in listed if r["task_number"] == 1)
    listed_ids = [r["id"] for r in listed]
    shown = taskmaster_cli("codegen", "show", short_ids(listed_ids)[listed_ids.index(run_id)], env=env)
    assert shown.returncode == 0, shown.stderr
    for words in ("succeeded at stage done", "template: codegen.task@1", "branch: taskmaster/1-schema",
                  "agent: offline", "pull request: #"):  # fmt: skip
        assert words in shown.stdout, shown.stdout
    assert "checkout" in shown.stdout and "pull_request" in shown.stdout  # the stages table
    tasks = json_of(taskmaster_cli("task", "list", "-p", "app", "--json", env=env))
    items = tasks["items"] if isinstance(tasks, dict) else tasks
    assert {t["number"]: t["status"] for t in items} == {1: "review", 2: "pending", 3: "review"}
    # The run's worker name was this command's; its heartbeat row went with it.
    again = taskmaster_cli("codegen", "run", "-p", "app", "--task", "2", env=env)
    assert again.returncode == 2 and "#2 (pending)" in again.stderr, again.stderr


def test_a_refused_push_fails_the_run_exit_1_and_leaves_nothing(
    taskmaster_cli: Runner, env: dict[str, str], on_github: GitHubProject
) -> None:
    hook = on_github.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes are closed' >&2\nexit 1\n")
    hook.chmod(0o755)
    ran = taskmaster_cli("codegen", "run", "-p", "app", "--task", "3", "--agent", "offline", "--json", env=env)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    [run] = json.loads(ran.stdout)["runs"]
    assert (run["task_number"], run["status"], run["stage"]) == (3, "failed", "push")
    assert run["error"] and run["pull_request_number"] is None
    assert branches(on_github.remote) == {"main"}
    assert not [r for r in on_github.fake.requests if r.method == "POST" and r.path.endswith("/pulls")]
    task = json_of(taskmaster_cli("task", "show", "-p", "app", "3", "--json", env=env))
    assert task["status"] == "pending"


def test_ctrl_c_cancels_the_runs_which_remove_what_they_made_and_exit_130(
    env: dict[str, str], on_github: GitHubProject, tmp_path: Path
) -> None:
    marker = tmp_path / "push-started"
    hook = on_github.remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\ncat > /dev/null\ntouch {marker}\nsleep 3\nexit 0\n")  # a slow, accepting remote
    hook.chmod(0o755)
    run = subprocess.Popen(
        [TASKMASTER, "codegen", "run", "-p", "app", "--task", "1", "--agent", "offline"],
        env=clean_env(**env, PYTHONFAULTHANDLER="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert run.poll() is None and time.monotonic() < deadline, "the push did not start"
            time.sleep(0.05)
        run.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            stdout, stderr = run.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            run.send_signal(signal.SIGABRT)
            stdout, stderr = run.communicate(timeout=20)
            raise AssertionError(stdout + stderr) from None
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, stdout + stderr
    assert "interrupted: runs canceled" in stderr and "remove what they made" in stdout
    settings = make_settings(state_dir=Path(env["TASKMASTER_HOME"]))

    async def state() -> tuple[str, str]:
        db = Database.from_settings(settings)
        try:
            async with db.session() as session:
                [found] = await codegen.list_runs(session)
                task = await tasks.get_task(session, found.project_id, 1)
                return found.status, task.status
        finally:
            await db.dispose()

    # The run noticed at its next stage: the pushed branch is deleted, no PR was opened, the task is pending again.
    assert asyncio.run(state()) == ("canceled", "pending")
    assert branches(on_github.remote) == {"main"}
    assert not [r for r in on_github.fake.requests if r.method == "POST" and r.path.endswith("/pulls")]


def test_loop_goes_on_with_the_tasks_a_merge_made_ready_and_ends_when_nothing_waits(
    env: dict[str, str], on_github: GitHubProject
) -> None:
    settings = make_settings(state_dir=Path(env["TASKMASTER_HOME"]))

    async def task_status(number: int) -> str:
        db = Database.from_settings(settings)
        try:
            async with db.session() as session:
                project = await projects.get_project(session, "app")
                return (await tasks.get_task(session, project.id, number)).status
        finally:
            await db.dispose()

    async def merge(number: int) -> dict[str, Any]:
        """What the webhook of a merged pull request does (`merges.pull_request_closed`)."""
        db = Database.from_settings(settings)
        try:
            async with db.transaction() as session:
                project = await projects.get_project(session, "app")
                task = await tasks.get_task(session, project.id, number)
                pull = await session.scalar(select(PullRequest).where(PullRequest.task_id == task.id))
                assert pull is not None
                pull.state, pull.merged = "closed", True
                return await merges.pull_request_closed(session, project, pull)
        finally:
            await db.dispose()

    def wait_for_review(number: int) -> None:
        deadline = time.monotonic() + 60
        while asyncio.run(task_status(number)) != "review":
            assert run.poll() is None and time.monotonic() < deadline, f"task {number} never reached review"
            time.sleep(0.2)

    run = subprocess.Popen(
        [TASKMASTER, "codegen", "run", "-p", "app", "--task", "1", "--agent", "offline", "--loop", "--json"],
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_review(1)
        assert run.poll() is None  # task 1's PR waits for its merge: --loop keeps going
        assert asyncio.run(merge(1))["ready"] == [2]  # task 3 was ready before: not the merge's to start
        wait_for_review(2)
        assert asyncio.run(merge(2))["ready"] == []
        stdout, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, stdout + stderr
    ran = json.loads(stdout)["runs"]
    assert [(r["task_number"], r["status"]) for r in ran] == [(1, "succeeded"), (2, "succeeded")]
    assert branches(on_github.remote) == {"main", "taskmaster/1-schema", "taskmaster/2-api"}
    assert asyncio.run(task_status(3)) == "pending"


def test_with_taskmaster_url_run_follows_what_the_servers_worker_does(
    taskmaster_cli: Runner, env: dict[str, str], home: Path, on_github: GitHubProject
) -> None:
    settings = make_settings(state_dir=home / "state")
    with live_server(create_app(settings, run_worker=True)) as url:
        ran = taskmaster_cli(
            "codegen", "run", "-p", "app", "--task", "3", "--agent", "offline", env={**env, "TASKMASTER_URL": url},
            timeout=120,
        )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "done         succeeded: PR #1" in ran.stdout and "1 codegen runs" in ran.stdout
    assert branches(on_github.remote) == {"main", "taskmaster/3-docs"}
    listed = json_of(taskmaster_cli("codegen", "list", "--json", env=env))["items"]
    # Run by the server's worker, not by this command.
    assert [(r["task_number"], r["status"]) for r in listed] == [(3, "succeeded")]
