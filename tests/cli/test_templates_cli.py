"""`taskmaster template list | show | edit | activate` through the real console script on the embedded database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from taskmaster.templates.syntax import default_names, default_text
from tests.cli.conftest import Runner


def test_list_show_edit_from_a_file_and_from_the_editor_then_activate(taskmaster_cli: Runner, workdir: Path) -> None:
    listed = taskmaster_cli("template", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {t["name"]: t["active_version"] for t in json.loads(listed.stdout)} == dict.fromkeys(default_names(), 1)
    table = taskmaster_cli("template", "list")
    assert "prd.parse" in table.stdout and "task.expand" in table.stdout

    shown = taskmaster_cli("template", "show", "task.expand")
    assert shown.returncode == 0 and shown.stdout == default_text("task.expand")
    assert "version 1 (active" in shown.stderr

    (workdir / "v2.j2").write_text("Split {{ title }} into {{ num }}.\n")
    edited = taskmaster_cli("template", "edit", "task.expand", "--file", "v2.j2", "--json")
    assert edited.returncode == 0, edited.stderr
    assert json.loads(edited.stdout) == {"name": "task.expand", "version": 2, "is_active": True}

    editor = "sed -i 's/Split/Cut/'"  # what $EDITOR does to the active text, in place
    by_editor = taskmaster_cli("template", "edit", "task.expand", env={"EDITOR": editor, "VISUAL": editor})
    assert by_editor.returncode == 0, by_editor.stderr
    assert "version 3 stored and active" in by_editor.stdout
    assert taskmaster_cli("template", "show", "task.expand").stdout == "Cut {{ title }} into {{ num }}.\n"

    assert taskmaster_cli("template", "activate", "task.expand", "1").returncode == 0
    detail = json.loads(taskmaster_cli("template", "show", "task.expand", "--version", "2", "--json").stdout)
    assert detail["active_version"] == 1 and detail["shown"]["content"] == "Split {{ title }} into {{ num }}.\n"
    assert [(v["version"], v["is_active"]) for v in detail["versions"]] == [(1, True), (2, False), (3, False)]
    with sqlite3.connect(workdir / ".taskmaster" / "taskmaster.db") as conn:
        actions = conn.execute("select action, actor from audit_events order by created_at").fetchall()
    assert actions == [("template.version.add", "cli")] * 2 + [("template.activate", "cli")]


def test_bad_text_unknown_names_and_versions_fail_clearly(taskmaster_cli: Runner, workdir: Path) -> None:
    (workdir / "broken.j2").write_text("fine\n{% if %}\n")
    broken = taskmaster_cli("template", "edit", "prd.parse", "--file", "broken.j2")
    assert broken.returncode == 1 and "'prd.parse'" in broken.stderr and "line 2" in broken.stderr
    assert json.loads(taskmaster_cli("template", "show", "prd.parse", "--json").stdout)["active_version"] == 1

    unknown = taskmaster_cli("template", "show", "no.such")
    assert unknown.returncode == 1 and "no template named 'no.such'" in unknown.stderr
    missing = taskmaster_cli("template", "activate", "prd.parse", "7")
    assert missing.returncode == 1 and "has no version 7" in missing.stderr
    no_file = taskmaster_cli("template", "edit", "prd.parse", "--file", "nowhere.j2")
    assert no_file.returncode == 1 and "cannot read nowhere.j2" in no_file.stderr
    not_saved = taskmaster_cli("template", "edit", "prd.parse", env={"EDITOR": "true", "VISUAL": "true"})
    assert not_saved.returncode == 1 and "not saved" in not_saved.stderr
