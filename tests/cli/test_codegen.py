"""`taskmaster codegen run|list|show|cancel`, run as the real command: usage and configuration errors exit 2 before
anything is stored; runs requested with `--detach` are listed, shown by id prefix and canceled; `--json` everywhere;
with `TASKMASTER_URL` the same commands go through a live server's REST API."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskmaster.app import create_app
from taskmaster.workspaces.cleanup import remove_tree_sync
from tests.cli.conftest import Runner
from tests.support import commit, git, live_server
from tests.support.databases import make_settings


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

    shown = json_of(taskmaster_cli("codegen", "show", ids[0][:13], "--json", env=env))
    assert shown["id"] == ids[0] and shown["status"] == "pending" and "stages" in shown
    text = taskmaster_cli("codegen", "show", ids[0], env=env)
    assert text.returncode == 0 and f"codegen run {ids[0]}: pending" in text.stdout and "agent:" in text.stdout

    canceled = taskmaster_cli("codegen", "cancel", ids[0][:13], env=env)
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
