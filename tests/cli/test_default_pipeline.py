"""Repositories without `.taskmaster.yml` run their detected default pipeline through the real `taskmaster` command;
`taskmaster pipeline init` writes that pipeline out for people to edit."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskmaster.pipelines.definition import load_definition
from taskmaster.workspaces.cleanup import remove_tree_sync
from tests.cli.conftest import Runner
from tests.support import commit, git

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "tiny"
version = "0.1.0"

[project.optional-dependencies]
test = ["pytest"]
"""
PACKAGE_JSON = {"name": "tiny", "version": "1.0.0", "private": True, "scripts": {"test": "node --test"}}


@pytest.fixture
def home() -> Iterator[Path]:
    """A state directory the sandbox user can reach (its workspaces live under it)."""
    path = Path(tempfile.mkdtemp(prefix="taskmaster-cli-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        remove_tree_sync(path)


def python_repository(path: Path) -> None:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "tiny").mkdir()
    (path / "tests").mkdir()
    (path / "tiny" / "__init__.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    (path / "tests" / "test_add.py").write_text(
        "from tiny import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    git(path, "add", ".")
    commit(path, "pyproject.toml", PYPROJECT)


def node_repository(path: Path) -> None:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "test").mkdir()
    (path / "index.js").write_text("exports.add = (a, b) => a + b;\n")
    (path / "test" / "add.test.js").write_text(
        "const test = require('node:test');\nconst assert = require('node:assert');\n"
        "const { add } = require('..');\ntest('add', () => assert.strictEqual(add(2, 3), 5));\n"
    )
    (path / "package.json").write_text(json.dumps(PACKAGE_JSON, indent=2) + "\n")
    subprocess.run(["npm", "install", "--package-lock-only", "--no-audit", "--no-fund"], cwd=path, check=True)
    git(path, "add", ".")
    commit(path, "package-lock.json", (path / "package-lock.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "said"), [(python_repository, "making .venv"), (node_repository, 'package.json has no "lint" script')]
)
def test_a_repository_without_taskmaster_yml_gets_a_green_default_pipeline(
    taskmaster_cli: Runner, tmp_path: Path, home: Path, make: object, said: str
) -> None:
    env = {"TASKMASTER_HOME": str(home / "state"), "COLUMNS": "200"}
    repo = tmp_path / "repo"
    assert callable(make)
    make(repo)
    added = taskmaster_cli("project", "add", "app", "--repo", str(repo), "--forge", "local", env=env)
    assert added.returncode == 0, added.stderr

    run = taskmaster_cli("pipeline", "run", "-p", "app", "--ref", "main", "--json", env=env, timeout=600)

    assert run.returncode == 0, run.stdout + run.stderr
    detail = json.loads(run.stdout)
    statuses = {step["name"]: step["status"] for step in detail["steps"]}
    assert statuses == {
        "checkout": "success",
        "install": "success",
        "lint": "success",
        "test": "success",
        "ai_review": "skipped",
    }
    logs = taskmaster_cli("pipeline", "logs", detail["id"], env=env)
    assert said in logs.stdout
    assert "1 passed" in logs.stdout or "# pass 1" in logs.stdout, logs.stdout


def test_pipeline_init_writes_the_detected_pipeline_and_refuses_to_overwrite_it(
    taskmaster_cli: Runner, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    python_repository(repo)

    written = taskmaster_cli("pipeline", "init", "--path", str(repo))

    assert written.returncode == 0, written.stderr
    assert "detected: python" in written.stdout
    target = repo / ".taskmaster.yml"
    definition = load_definition(target.read_text())
    assert list(definition.steps) == ["checkout", "install", "lint", "test", "ai_review"]
    assert "pip_install -e '.[test]'" in (definition.steps["install"].run or "")

    target.write_text("steps:\n  mine: {run: make}\n")
    again = taskmaster_cli("pipeline", "init", "--path", str(repo))
    assert again.returncode == 1 and "exists" in again.stderr and "--force" in again.stderr
    assert target.read_text() == "steps:\n  mine: {run: make}\n"
    forced = taskmaster_cli("pipeline", "init", "--path", str(repo), "--force")
    assert forced.returncode == 0 and "pip_install" in target.read_text()

    missing = taskmaster_cli("pipeline", "init", "--path", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no such directory" in missing.stderr

    target.unlink()
    assert taskmaster_cli("project", "add", "tiny", "--repo", str(repo)).returncode == 0
    by_project = taskmaster_cli("pipeline", "init", "-p", "tiny")
    assert by_project.returncode == 0, by_project.stderr
    assert f"wrote {target}" in by_project.stdout and target.exists()
