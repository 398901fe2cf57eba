"""`taskmaster demo`: the sample project, its tasks, and a pipeline that is green in the real sandbox."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskmaster.workspaces.cleanup import remove_tree_sync
from tests.cli.conftest import Runner


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="taskmaster-demo-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        remove_tree_sync(path)


@pytest.mark.slow
def test_the_demo_makes_a_project_with_tasks_and_a_pipeline_that_passes(taskmaster_cli: Runner, home: Path) -> None:
    env = {"TASKMASTER_HOME": str(home / "state")}
    made = taskmaster_cli("demo", "--json", env=env)
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout)
    assert result["tasks"] == 4
    assert (Path(result["repository"]) / ".taskmaster.yml").exists()
    tasks = json.loads(taskmaster_cli("task", "list", "-p", "demo", "--json", env=env).stdout)
    assert [t["title"] for t in tasks][:1] and len(tasks) == 4
    assert not any("context" in t["title"].lower() or "scope" in t["title"].lower() for t in tasks)
    run = taskmaster_cli("pipeline", "run", "-p", "demo", "--ref", "main", env=env, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    assert ": success" in run.stdout
    again = taskmaster_cli("demo", env=env)
    assert again.returncode == 1
    assert "already exists" in again.stderr
