"""`taskmaster task ...` through the real command: JSON shaped like the REST API, exit codes like CI tools."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Runner

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_task_workflow_from_the_command_line(taskmaster_cli: Runner) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    none = taskmaster_cli("task", "list")
    assert none.returncode == 1 and "no project yet" in none.stderr
    assert taskmaster_cli("project", "add", "app", "--repo", ".").returncode == 0
    first = json.loads(taskmaster_cli("task", "add", "Schema", "--priority", "1", "--json").stdout)
    assert first["number"] == 1 and first["status"] == "pending" and first["dependencies"] == []
    second = json.loads(taskmaster_cli("task", "add", "API", "-d", "1", "--type", "feature", "--json").stdout)
    assert second["dependencies"] == [first["id"]]
    cycle = taskmaster_cli("task", "deps", "1", "--add", "2")
    assert cycle.returncode == 1 and "would create a cycle: #1 -> #2 -> #1" in cycle.stderr
    bad = taskmaster_cli("task", "set-status", "1", "finished")
    assert bad.returncode == 2 and "status must be one of" in bad.stderr
    assert json.loads(taskmaster_cli("task", "next", "--json").stdout)["title"] == "Schema"
    claimed = taskmaster_cli("task", "claim", "--assignee", "agent-1", "--json")
    assert claimed.returncode == 0 and json.loads(claimed.stdout)["assignee"] == "agent-1"
    nothing = taskmaster_cli("task", "claim", "--assignee", "agent-2")
    assert nothing.returncode == 1 and "no task is ready" in nothing.stdout
    assert taskmaster_cli("task", "set-status", "1", "done").returncode == 0
    ready = json.loads(taskmaster_cli("task", "ready", "--json").stdout)
    assert [t["title"] for t in ready] == ["API"]
    listed = json.loads(taskmaster_cli("task", "list", "--json").stdout)
    assert [(t["number"], t["status"]) for t in listed] == [(1, "done"), (2, "pending")]
    valid = taskmaster_cli("task", "validate", "--json")
    assert valid.returncode == 0 and json.loads(valid.stdout)["ok"] is True
    assert taskmaster_cli("project", "add", "other", "--repo", "/").returncode == 0
    ambiguous = taskmaster_cli("task", "list")
    assert ambiguous.returncode == 2 and "choose one with --project" in ambiguous.stderr
    refused = taskmaster_cli("task", "remove", "1", "-p", "app", "--yes")
    assert refused.returncode == 1 and "depend on task #1" in refused.stderr
    assert taskmaster_cli("task", "remove", "1", "-p", "app", "--force", "--yes").returncode == 0
    shown = json.loads(taskmaster_cli("task", "show", "2", "-p", "app", "--json").stdout)
    assert shown["dependencies"] == []


def test_prd_parse_then_next_follows_the_documents_order(taskmaster_cli: Runner, workdir: Path) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    assert taskmaster_cli("project", "add", "billing", "--repo", ".").returncode == 0
    parsed = taskmaster_cli("prd", "parse", str(EXAMPLES / "prd-saas-billing.md"), "-p", "billing", "--json")
    assert parsed.returncode == 0, parsed.stderr
    tasks = json.loads(parsed.stdout)
    top = [t for t in tasks if t["parent_task_id"] is None]
    assert 6 <= len(top) <= 20 and len(tasks) > len(top)
    assert all(t["source_section"] for t in tasks)
    assert json.loads(taskmaster_cli("task", "validate", "--json").stdout)["ok"] is True
    first = json.loads(taskmaster_cli("task", "next", "--json").stdout)
    assert "Foundations" in (first["source_section"] or "")
    empty = workdir / "empty.md"
    empty.write_text("\n\n")
    nothing = taskmaster_cli("prd", "parse", str(empty), "-p", "billing")
    assert nothing.returncode == 1 and "no requirements" in nothing.stderr


def test_claude_task_master_file_round_trips_through_the_database(taskmaster_cli: Runner, workdir: Path) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    assert taskmaster_cli("project", "add", "ctm", "--repo", ".").returncode == 0
    source = Path(__file__).parents[1] / "tasks" / "data" / "claude-task-master-tasks.json"
    imported = taskmaster_cli("task", "import", str(source))
    assert imported.returncode == 0, imported.stderr
    assert "tag 'master'" in imported.stdout and "tag 'feature-auth'" in imported.stdout
    out = workdir / "out.json"
    assert taskmaster_cli("task", "export", "-o", str(out)).returncode == 0
    assert json.loads(out.read_text()) == json.loads(source.read_text())
    broken = workdir / "broken.json"
    broken.write_text('{"master": {"tasks": [{"id": 1}]}}')
    refused = taskmaster_cli("task", "import", str(broken))
    assert refused.returncode == 1 and "master.tasks[0]" in refused.stderr
