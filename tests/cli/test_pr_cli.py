"""`taskmaster pr …`, `issue …` and `pipeline run --pr N`, run as the real command on a local-forge project whose
repository has its base branch checked out with uncommitted changes."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskmaster.workspaces.cleanup import remove_tree_sync
from tests.cli.conftest import Runner
from tests.support import commit, git

PIPELINE = "steps:\n  checkout: {uses: checkout}\n  hello: {run: 'test -f feature.txt', needs: [checkout]}\n"


@pytest.fixture
def home() -> Iterator[Path]:
    """A state directory the sandbox user can reach (its workspaces live under it)."""
    path = Path(tempfile.mkdtemp(prefix="taskmaster-cli-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        remove_tree_sync(path)


def _repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    commit(path, ".taskmaster.yml", PIPELINE)
    commit(path, "README.md", "hello\n")
    git(path, "checkout", "-q", "-b", "feature")
    commit(path, "feature.txt", "new\n")
    git(path, "checkout", "-q", "-b", "clash", "main")
    commit(path, "README.md", "clash's readme\n")
    git(path, "checkout", "-q", "main")
    commit(path, "README.md", "main's readme\n")
    (path / "scratch.txt").write_text("not committed\n")
    return path


@pytest.mark.slow
def test_pull_requests_are_opened_validated_here_merged_with_git_and_refused_with_their_exit_codes(
    taskmaster_cli: Runner, tmp_path: Path, home: Path
) -> None:
    env = {"TASKMASTER_HOME": str(home / "state"), "COLUMNS": "200"}
    repo = _repo(tmp_path / "repo")
    assert taskmaster_cli("project", "add", "app", "--repo", str(repo), "--forge", "local", env=env).returncode == 0

    opened = taskmaster_cli("pr", "create", "-p", "app", "--head", "feature", "--title", "Add feature", "--json",
                            env=env)  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout)["number"] == 1
    again = taskmaster_cli("pr", "create", "-p", "app", "--head", "feature", "--title", "Again", env=env)
    assert again.returncode == 1 and "pull request #1 from 'feature' into 'main' is already open" in again.stderr
    unknown = taskmaster_cli("pr", "create", "-p", "app", "--head", "nope", "--title", "t", env=env)
    assert unknown.returncode == 2 and f"branch 'nope' does not exist in {repo}" in unknown.stderr
    blank = taskmaster_cli("pr", "create", "-p", "app", "--head", "feature", "--title", " ", env=env)
    assert blank.returncode == 2 and "--title" in blank.stderr
    assert taskmaster_cli("pr", "create", "-p", "app", "--head", "clash", "--title", "Clash", env=env).returncode == 0

    run = taskmaster_cli("pipeline", "run", "-p", "app", "--pr", "1", env=env, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "(feature)" in run.stdout and ": success" in run.stdout
    shown = json.loads(taskmaster_cli("pr", "show", "-p", "app", "1", "--json", env=env).stdout)
    assert [p["status"] for p in shown["pipelines"]] == ["success"]
    assert shown["pipelines"][0]["commit_sha"] == git(repo, "rev-parse", "feature")

    merged = taskmaster_cli("pr", "merge", "-p", "app", "1", env=env)
    assert merged.returncode == 0, merged.stderr
    assert (repo / "feature.txt").read_text() == "new\n" and (repo / "scratch.txt").exists()
    assert git(repo, "rev-parse", "main") in merged.stdout
    twice = taskmaster_cli("pr", "merge", "-p", "app", "1", env=env)
    assert twice.returncode == 1 and "#1 is merged: only an open pull request can be merged" in twice.stderr
    clash = taskmaster_cli("pr", "merge", "-p", "app", "2", env=env)
    assert clash.returncode == 1 and "conflicts in 1 file(s): README.md" in clash.stderr
    assert taskmaster_cli("pr", "show", "-p", "app", "99", env=env).returncode == 2

    listed = taskmaster_cli("pr", "list", "-p", "app", env=env)
    assert listed.returncode == 0 and "Add feature" in listed.stdout and "merged" in listed.stdout
    assert taskmaster_cli("pr", "close", "-p", "app", "2", env=env).returncode == 0
    states = {p["number"]: p["state"] for p in json.loads(taskmaster_cli("pr", "list", "-p", "app", "--json",
                                                                           env=env).stdout)}  # fmt: skip
    assert states == {1: "merged", 2: "closed"}
    deliveries = json.loads(taskmaster_cli("webhooks", "list", "--json", env=env).stdout)["items"]
    assert sorted((d["provider"], d["action"]) for d in deliveries) == [
        ("local", "closed"), ("local", "closed"), ("local", "opened"), ("local", "opened")
    ]  # fmt: skip

    assert json.loads(taskmaster_cli("issue", "list", "-p", "app", "--json", env=env).stdout) == []
    missing = taskmaster_cli("issue", "show", "-p", "app", "3", env=env)
    assert missing.returncode == 2 and "has no issue #3" in missing.stderr
    both = taskmaster_cli("pipeline", "run", "-p", "app", "--pr", "1", "--ref", "main", env=env)
    assert both.returncode == 2 and "exactly one of --ref and --pr" in both.stderr


def test_a_draft_pull_request_is_opened_as_one_and_refused_a_merge(
    taskmaster_cli: Runner, tmp_path: Path, home: Path
) -> None:
    env = {"TASKMASTER_HOME": str(home / "state"), "COLUMNS": "200"}
    repo = _repo(tmp_path / "repo")
    assert taskmaster_cli("project", "add", "app", "--repo", str(repo), "--forge", "local", env=env).returncode == 0

    opened = taskmaster_cli("pr", "create", "-p", "app", "--head", "feature", "--title", "Sketch", "--draft", env=env)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.strip() == "opened draft pull request #1: feature -> main"
    ready = taskmaster_cli("pr", "create", "-p", "app", "--head", "clash", "--title", "Ready", "--json", env=env)
    assert json.loads(ready.stdout)["draft"] is False

    shown = taskmaster_cli("pr", "show", "-p", "app", "1", env=env)
    assert shown.returncode == 0 and "#1 Sketch [open, draft]" in shown.stdout
    main = git(repo, "rev-parse", "main")
    refused = taskmaster_cli("pr", "merge", "-p", "app", "1", env=env)
    assert refused.returncode == 1 and "pull request #1 is a draft" in refused.stderr
    assert git(repo, "rev-parse", "main") == main and not (repo / "feature.txt").exists()
    listed = json.loads(taskmaster_cli("pr", "list", "-p", "app", "--json", env=env).stdout)
    assert {(p["number"], p["draft"], p["state"]) for p in listed} == {(1, True, "open"), (2, False, "open")}


def test_a_draft_marked_ready_raises_its_event_and_can_then_be_merged_and_bad_cases_exit_non_zero(
    taskmaster_cli: Runner, tmp_path: Path, home: Path
) -> None:
    env = {"TASKMASTER_HOME": str(home / "state"), "COLUMNS": "200"}
    repo = _repo(tmp_path / "repo")
    assert taskmaster_cli("project", "add", "app", "--repo", str(repo), "--forge", "local", env=env).returncode == 0
    assert taskmaster_cli("pr", "create", "-p", "app", "--head", "feature", "--title", "Sketch", "--draft",
                          env=env).returncode == 0  # fmt: skip
    assert taskmaster_cli("pr", "create", "-p", "app", "--head", "clash", "--title", "Ready", env=env).returncode == 0

    ready = taskmaster_cli("pr", "ready", "-p", "app", "1", env=env)
    assert ready.returncode == 0, ready.stderr
    head = git(repo, "rev-parse", "feature")
    assert ready.stdout.strip() == (
        f"marked pull request #1 ready for review; its validation of {head[:12]} is requested through the webhook queue"
    )
    data = json.loads(taskmaster_cli("pr", "show", "-p", "app", "1", "--json", env=env).stdout)
    assert (data["number"], data["draft"], data["state"]) == (1, False, "open")
    assert data["head_sha"] == head
    deliveries = json.loads(taskmaster_cli("webhooks", "list", "--json", env=env).stdout)["items"]
    assert sorted(d["action"] for d in deliveries) == ["opened", "opened", "ready_for_review"]
    shown = taskmaster_cli("pr", "show", "-p", "app", "1", env=env)
    assert "#1 Sketch [open]" in shown.stdout

    again = taskmaster_cli("pr", "ready", "-p", "app", "1", env=env)
    assert again.returncode == 1 and "pull request #1 is not a draft: it is ready for review already" in again.stderr
    not_draft = taskmaster_cli("pr", "ready", "-p", "app", "2", env=env)
    assert not_draft.returncode == 1 and "#2 is not a draft" in not_draft.stderr
    missing = taskmaster_cli("pr", "ready", "-p", "app", "9", env=env)
    assert missing.returncode == 2 and "has no pull request #9" in missing.stderr
    nowhere = taskmaster_cli("pr", "ready", "-p", "nowhere", "1", env=env)
    assert nowhere.returncode == 2 and "project nowhere does not exist" in nowhere.stderr
    assert taskmaster_cli("pr", "ready", "-p", "app", "0", env=env).returncode == 2

    merged = taskmaster_cli("pr", "merge", "-p", "app", "1", env=env)
    assert merged.returncode == 0, merged.stderr
    after = taskmaster_cli("pr", "ready", "-p", "app", "1", env=env)
    assert after.returncode == 1 and "#1 is merged: only an open draft can be marked ready" in after.stderr
    git(repo, "branch", "more", "feature")
    assert taskmaster_cli("pr", "create", "-p", "app", "--head", "more", "--title", "More", "--draft",
                          env=env).returncode == 0  # fmt: skip
    as_json = taskmaster_cli("pr", "ready", "-p", "app", "3", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    assert {k: json.loads(as_json.stdout)[k] for k in ("number", "draft", "head_ref")} == {
        "number": 3, "draft": False, "head_ref": "more"
    }  # fmt: skip
