"""The CLI as people use git: ids by unique prefix, lists whose ids `show` takes, confirmations, clear refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.conftest import Runner
from tests.support import commit, git

NARROW = {"COLUMNS": "80"}


def test_pipeline_ids_are_taken_by_unique_prefix_as_the_list_prints_them(
    taskmaster_cli: Runner, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, ".taskmaster.yml", "steps:\n  hello: {run: 'echo hi'}\n  bye: {run: 'echo bye'}\n")
    assert taskmaster_cli("project", "add", "app", "--repo", str(repo)).returncode == 0
    ids = [taskmaster_cli("pipeline", "run", "-p", "app", "-r", "main", "--detach").stdout.strip() for _ in range(2)]

    listed = taskmaster_cli("pipeline", "list", env=NARROW)

    shown_ids = re.findall(r"[0-9a-f]{8}-[0-9a-f-]{4,}", listed.stdout)
    assert len(shown_ids) == 2 and all(ids[i].startswith(shown_ids[1 - i]) for i in range(2)), listed.stdout
    for short, full in zip(shown_ids, reversed(ids), strict=True):
        shown = taskmaster_cli("pipeline", "show", short, "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["id"] == full
    common = ids[0][:4]
    ambiguous = taskmaster_cli("pipeline", "show", common)
    assert ambiguous.returncode == 1
    assert "ambiguous" in ambiguous.stderr and ids[0] in ambiguous.stderr and ids[1] in ambiguous.stderr
    nothing = taskmaster_cli("pipeline", "show", "ffff")
    assert nothing.returncode == 1 and "no pipeline id starts with 'ffff'" in nothing.stderr

    no_step = taskmaster_cli("pipeline", "logs", shown_ids[0], "--step", "nosuch")

    assert no_step.returncode == 1
    assert "has no step 'nosuch'; its steps: hello, bye" in no_step.stderr


def test_task_list_shows_dependencies_as_numbers_and_tasks_are_found_by_id_prefix(taskmaster_cli: Runner) -> None:
    assert taskmaster_cli("project", "add", "app", "--repo", ".").returncode == 0
    first = json.loads(taskmaster_cli("task", "add", "Schema", "--json").stdout)
    taskmaster_cli("task", "add", "API", "-d", "1")
    taskmaster_cli("task", "add", "UI", "-d", "1", "-d", "2")

    listed = taskmaster_cli("task", "list", env=NARROW)

    assert listed.returncode == 0
    assert re.search(r"UI\s+│\s+#1,#2\s", listed.stdout), listed.stdout
    by_prefix = taskmaster_cli("task", "show", first["id"][:18], "--json")
    assert by_prefix.returncode == 0 and json.loads(by_prefix.stdout)["title"] == "Schema"
    ambiguous = taskmaster_cli("task", "show", first["id"][:4])
    assert ambiguous.returncode == 1 and "ambiguous" in ambiguous.stderr


def test_destructive_commands_ask_and_refuse_without_a_terminal_unless_yes(taskmaster_cli: Runner) -> None:
    assert taskmaster_cli("project", "add", "app", "--repo", ".").returncode == 0
    taskmaster_cli("task", "add", "Schema")
    token = json.loads(taskmaster_cli("token", "create", "--role", "viewer", "--json").stdout)

    for args in (["project", "remove", "app"], ["task", "remove", "1"], ["token", "revoke", token["id"][:20]]):
        refused = taskmaster_cli(*args)
        assert refused.returncode == 2, args
        assert "not confirmed (no terminal to ask on); add --yes" in refused.stderr

    assert taskmaster_cli("task", "show", "1").returncode == 0
    assert json.loads(taskmaster_cli("token", "list", "--json").stdout)[0]["revoked_at"] is None
    assert taskmaster_cli("token", "revoke", token["id"][:20], "--yes").returncode == 0
    assert taskmaster_cli("task", "remove", "1", "--yes").returncode == 0
    assert taskmaster_cli("project", "remove", "app", "--yes").returncode == 0
    assert json.loads(taskmaster_cli("project", "list", "--json").stdout) == []


def test_project_add_refuses_a_missing_path_and_a_repository_another_project_uses(
    taskmaster_cli: Runner, workdir: Path
) -> None:
    missing = taskmaster_cli("project", "add", "app", "--repo", "nowhere")
    assert missing.returncode == 2 and "--repo nowhere: no such directory" in missing.stderr

    added = taskmaster_cli("project", "add", "app", "--repo", ".", "--json")
    assert added.returncode == 0 and json.loads(added.stdout)["repository"] == str(workdir.resolve())
    again = taskmaster_cli("project", "add", "app2", "--repo", str(workdir))
    assert again.returncode == 1
    assert f"project app already uses {workdir.resolve()}" in again.stderr and "--force" in again.stderr
    assert taskmaster_cli("project", "add", "app2", "--repo", str(workdir), "--force").returncode == 0
