"""`taskmaster pipeline run --ref` (the real command, in-process, no worker) runs the recovery its pipeline requests,
then the pushed fix's own validation pipeline, and exits by the branch's new head; `pipeline show` lists the rounds."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskmaster.workspaces.cleanup import remove_tree_sync
from tests.agents.llm.fakes import OPENAI_KEY, FakeLlm
from tests.cli.conftest import Runner, taskmaster_cli, workdir
from tests.support.git import commit, git
from tests.workflows.recovery.conftest import BRANCH, BROKEN, DEFINITION, FIXED, TEST

__all__ = ["taskmaster_cli", "workdir"]  # the command's fixtures, shared with tests/cli


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="taskmaster-recovery-cli-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        remove_tree_sync(path)


@pytest.mark.slow
def test_pipeline_run_recovers_pushes_the_fix_and_exits_by_the_fix_pipeline(
    taskmaster_cli: Runner, home: Path, model: tuple[str, FakeLlm]
) -> None:
    url, fake = model
    env = {"TASKMASTER_HOME": str(home / "state"), "COLUMNS": "200", "OPENAI_API_KEY": OPENAI_KEY,
           "OPENAI_BASE_URL": url}  # fmt: skip
    repo = home / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, ".taskmaster.yml", DEFINITION)
    commit(repo, "tests/test_add.sh", TEST)
    commit(repo, "app.sh", FIXED)
    git(repo, "checkout", "-q", "-b", BRANCH)
    head = commit(repo, "app.sh", BROKEN)
    patch = git(repo, "diff", BRANCH, "main", "--", "app.sh") + "\n"  # from the bug to the fix
    git(repo, "checkout", "-q", "main")
    fake.reset(lambda body: {"fixed": True, "patch": patch, "explanation": "add must add"}, api_key=OPENAI_KEY)
    assert taskmaster_cli("db", "migrate", env=env).returncode == 0
    assert taskmaster_cli("project", "add", "app", "--repo", str(repo), "--forge", "local", env=env).returncode == 0
    updated = taskmaster_cli(
        "project", "update", "app", "--set", "recovery.agent=openai", "--set", "recovery.mode=push", env=env
    )
    assert updated.returncode == 0, updated.stderr

    ran = taskmaster_cli("pipeline", "run", "-p", "app", "--ref", BRANCH, env=env, timeout=240)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    fix_sha = git(repo, "rev-parse", BRANCH)
    assert git(repo, "rev-parse", f"{BRANCH}~1") == head
    assert f"validates the fix {fix_sha[:12]}" in ran.stdout and "recovery: fixed" in ran.stderr
    listed = json.loads(taskmaster_cli("pipeline", "list", "-p", "app", "--json", env=env).stdout)["items"]
    by_sha = {(item["commit_sha"], item["trial_of"] is not None): item for item in listed}
    first = by_sha[(head, False)]
    assert first["status"] == "success" and by_sha[(fix_sha, False)]["status"] == "success"
    assert by_sha[(fix_sha, True)]["trial_of"] == first["id"]
    shown = json.loads(taskmaster_cli("pipeline", "show", first["id"], "--json", env=env).stdout)
    assert [(r["step"], r["round"], r["result"], r["fix_sha"]) for r in shown["recovery"]] == [
        ("test", 1, "pushed", fix_sha)
    ]
    table = taskmaster_cli("pipeline", "show", first["id"], env=env).stdout
    assert "recovery:" in table and "recovery.debug@1" in table and "pushed" in table
