"""`taskmaster pipeline run|list|show|logs|cancel`, run as the real command on a local repository."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskmaster.workspaces.cleanup import remove_tree_sync
from tests.cli.conftest import TASKMASTER, Runner, clean_env
from tests.support import commit, git, processes_with


@pytest.fixture
def home() -> Iterator[Path]:
    """A state directory the sandbox user can reach (its workspaces live under it)."""
    path = Path(tempfile.mkdtemp(prefix="taskmaster-cli-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        remove_tree_sync(path)


GOOD = "steps:\n  checkout: {uses: checkout}\n  hello: {run: 'echo hello from $TASKMASTER_STEP', needs: [checkout]}\n"
BAD = "steps:\n  hello: {run: 'echo hello'}\n  broken: {run: 'echo it broke; exit 4', needs: [hello]}\n"


@pytest.mark.slow
def test_pipeline_run_exits_by_outcome_and_runs_can_be_listed_shown_logged_and_canceled(
    taskmaster_cli: Runner, tmp_path: Path, home: Path
) -> None:
    env = {"TASKMASTER_HOME": str(home / "state"), "COLUMNS": "200"}
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, ".taskmaster.yml", GOOD)
    git(repo, "checkout", "-q", "-b", "bad")
    commit(repo, ".taskmaster.yml", BAD)
    assert taskmaster_cli("db", "migrate", env=env).returncode == 0
    added = taskmaster_cli("project", "add", "app", "--repo", str(repo), "--forge", "local", env=env)
    assert added.returncode == 0, added.stderr

    good = taskmaster_cli("pipeline", "run", "-p", "app", "--ref", "main", env=env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "hello                running (attempt 1)" in good.stdout and ": success" in good.stdout

    bad = taskmaster_cli("pipeline", "run", "-p", "app", "--ref", "bad", env=env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert ": failed (code)" in bad.stdout and "step 'broken' failed: exit code 4" in bad.stdout
    assert "it broke" in bad.stdout

    bad_id = json.loads(taskmaster_cli("pipeline", "list", "-p", "app", "--json", env=env).stdout)["items"][0]["id"]
    again = taskmaster_cli("pipeline", "retry", bad_id, "--json", env=env)
    assert again.returncode == 1, again.stdout + again.stderr
    retried = json.loads(again.stdout)
    assert retried["id"] != bad_id and retried["status"] == "failed"
    assert (retried["trigger_event"], retried["branch_name"]) == ("retry", "bad")

    detached = taskmaster_cli("pipeline", "run", "-p", "app", "--ref", "main", "--detach", env=env)
    assert detached.returncode == 0, detached.stderr
    pending_id = detached.stdout.strip()

    listed = json.loads(taskmaster_cli("pipeline", "list", "-p", "app", "--json", env=env).stdout)["items"]
    assert [item["status"] for item in listed] == ["pending", "failed", "failed", "success"]
    assert listed[0]["id"] == pending_id
    live = taskmaster_cli("pipeline", "retry", pending_id, env=env)
    assert live.returncode == 1 and "cancel it or let it finish before a retry" in live.stderr
    listed = [listed[0], *listed[2:]]  # the original bad run, then the good one

    shown = json.loads(taskmaster_cli("pipeline", "show", listed[1]["id"], "--json", env=env).stdout)
    steps = {s["name"]: s for s in shown["steps"]}
    assert (steps["broken"]["status"], steps["broken"]["exit_code"], steps["broken"]["failure_reason"]) == (
        "failed",
        4,
        "code",
    )
    assert [a["status"] for a in steps["hello"]["attempts"]] == ["success"]
    assert shown["duration_ms"] is not None and shown["failure_reason"] == "code"

    logs = taskmaster_cli("pipeline", "logs", listed[2]["id"], env=env)
    assert logs.returncode == 0 and "hello from hello" in logs.stdout and "--- checkout (attempt 1) ---" in logs.stdout
    only = taskmaster_cli("pipeline", "logs", listed[1]["id"], "--step", "broken", env=env)
    assert only.stdout == "it broke\n"

    canceled = taskmaster_cli("pipeline", "cancel", pending_id, env=env)
    assert canceled.returncode == 0 and "canceled" in canceled.stdout
    again = taskmaster_cli("pipeline", "cancel", pending_id, env=env)
    assert again.returncode == 1 and "does not apply" in again.stderr
    missing = taskmaster_cli("pipeline", "show", "not-an-id", env=env)
    assert missing.returncode == 2


@pytest.mark.slow
def test_ctrl_c_in_pipeline_run_cancels_the_pipeline_and_stops_its_step(
    taskmaster_cli: Runner, tmp_path: Path, home: Path
) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    env = {"TASKMASTER_HOME": str(home / "state")}
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(
        repo,
        ".taskmaster.yml",
        f"steps:\n  wait: {{run: 'echo waiting; sleep 60; echo {marker}'}}\n  after: {{run: 'true', needs: [wait]}}\n",
    )
    assert taskmaster_cli("db", "migrate", env=env).returncode == 0
    assert taskmaster_cli("project", "add", "app", "--repo", str(repo), "--forge", "local", env=env).returncode == 0

    run = subprocess.Popen(
        [TASKMASTER, "pipeline", "run", "-p", "app", "--ref", "main"],
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not processes_with(marker):
            assert run.poll() is None and time.monotonic() < deadline, "the step did not start"
            time.sleep(0.05)
        run.send_signal(signal.SIGINT)  # what Ctrl-C sends
        stdout, stderr = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()

    assert run.returncode == 130, stdout + stderr
    assert "interrupted: pipeline" in stderr and "canceled" in stderr
    assert processes_with(marker) == []
    listed = json.loads(taskmaster_cli("pipeline", "list", "-p", "app", "--json", env=env).stdout)["items"]
    shown = json.loads(taskmaster_cli("pipeline", "show", listed[0]["id"], "--json", env=env).stdout)
    assert (shown["status"], shown["error_message"]) == (
        "canceled",
        "interrupted: Ctrl-C in `taskmaster pipeline run`",
    )
    steps = {s["name"]: s for s in shown["steps"]}
    assert [a["status"] for a in steps["wait"]["attempts"]] == ["canceled"]
    assert (steps["wait"]["status"], steps["after"]["status"]) == ("canceled", "canceled")


@pytest.mark.slow
def test_pipeline_run_of_the_eight_step_acceptance_pipeline_reports_every_step(
    taskmaster_cli: Runner, tmp_path: Path, home: Path
) -> None:
    from tests.pipelines.test_engine import ACCEPTANCE

    env = {"TASKMASTER_HOME": str(home / "state")}
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "README.md", "hello\n")
    commit(repo, ".taskmaster.yml", ACCEPTANCE)
    assert taskmaster_cli("db", "migrate", env=env).returncode == 0
    assert taskmaster_cli("project", "add", "app", "--repo", str(repo), "--forge", "local", env=env).returncode == 0

    run = taskmaster_cli("pipeline", "run", "-p", "app", "--ref", "main", "--json", env=env, timeout=120)

    assert run.returncode == 1, run.stdout + run.stderr  # failed: `broken` exits 3
    shown = json.loads(run.stdout)
    steps = {s["name"]: s for s in shown["steps"]}
    assert {name: s["status"] for name, s in steps.items()} == {
        "checkout": "success", "left": "success", "right": "success", "join": "success", "flaky": "success",
        "broken": "failed", "deploy": "skipped", "notify": "success",
    }  # fmt: skip
    assert [a["exit_code"] for a in steps["flaky"]["attempts"]] == [75, 75, 0]
    assert (shown["status"], shown["failure_reason"]) == ("failed", "code")
    left, right = steps["left"]["attempts"][0], steps["right"]["attempts"][0]
    assert max(left["started_at"], right["started_at"]) < min(left["finished_at"], right["finished_at"])


def test_pipeline_create_retry_and_cancel_through_the_cli_are_audited(
    taskmaster_cli: Runner, tmp_path: Path, workdir: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, ".taskmaster.yml", GOOD)
    assert taskmaster_cli("db", "migrate").returncode == 0
    assert taskmaster_cli("project", "add", "app", "--repo", str(repo)).returncode == 0
    created = taskmaster_cli("pipeline", "run", "-p", "app", "--ref", "main", "--detach")
    assert created.returncode == 0, created.stderr
    pipeline_id = created.stdout.strip()
    canceled = taskmaster_cli("pipeline", "cancel", pipeline_id, "--reason", "not today")
    assert canceled.returncode == 0 and "canceled" in canceled.stdout
    retried = taskmaster_cli("pipeline", "retry", pipeline_id, "--detach")
    assert retried.returncode == 0, retried.stderr
    retry_id = retried.stdout.strip()

    with sqlite3.connect(workdir / ".taskmaster" / "taskmaster.db") as conn:
        rows = conn.execute(
            "select action, actor, target_id, data from audit_events where action like 'pipeline.%' order by created_at"
        ).fetchall()
    events = [(action, actor, target, json.loads(data)) for action, actor, target, data in rows]
    assert [(action, actor, target) for action, actor, target, _ in events] == [
        ("pipeline.create", "cli", pipeline_id),
        ("pipeline.cancel", "cli", pipeline_id),
        ("pipeline.retry", "cli", retry_id),
    ]
    assert events[1][3] == {"reason": "not today"}
    assert events[2][3]["retry_of"] == pipeline_id


def test_pipeline_run_of_a_definition_with_a_nul_character_is_an_error_naming_its_line(
    taskmaster_cli: Runner, tmp_path: Path, home: Path
) -> None:
    env = {"TASKMASTER_HOME": str(home / "state")}
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, ".taskmaster.yml", 'steps:\n  hello:\n    run: "echo hi"\n    env: {GREETING: "a\\0b"}\n')
    assert taskmaster_cli("db", "migrate", env=env).returncode == 0
    assert taskmaster_cli("project", "add", "app", "--repo", str(repo), "--forge", "local", env=env).returncode == 0

    run = taskmaster_cli("pipeline", "run", "-p", "app", "--ref", "main", "--json", env=env)

    assert run.returncode == 2, run.stdout + run.stderr
    shown = json.loads(run.stdout)
    assert (shown["status"], shown["failure_reason"], shown["steps"]) == ("error", "code", [])
    assert shown["error_message"] == (
        ".taskmaster.yml:4: steps.hello.env.GREETING: the character U+0000 (NUL) is not allowed"
    )
