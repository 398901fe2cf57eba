"""A `taskmaster worker` process killed with SIGKILL after each stage of a code-generation run (branch made, pushed,
pull request opened but its answer not yet received), on PostgreSQL: the run completes when the worker restarts
under its name, and when another worker takes it over, with exactly one branch and one pull request for the task."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from taskmaster.db.models import Project, PullRequest, Task, WorkflowRun, WorkflowStep
from taskmaster.db.session import Database
from taskmaster.secrets.box import SecretBox
from taskmaster.tasks import service as tasks
from taskmaster.tasks.schemas import TaskCreate
from taskmaster.workflows.codegen import service as codegen
from taskmaster.workflows.codegen.schemas import CodegenRequest
from tests.forges.fakes import github as fake_github
from tests.forges.fakes.github import FakeGitHub
from tests.support import eventually, make_settings
from tests.support.git import git
from tests.support.workers import WorkerProcess, Workers, worker_env
from tests.workflows.codegen.conftest import make_remote

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

STALE_AFTER = 3.0
BRANCH = "taskmaster/1-write-the-store"


def _worker(workers: Workers, tmp_path: Path, url: str, name: str) -> WorkerProcess:
    env = worker_env(tmp_path / "state", name, tmp_path / "machines" / name, STALE_AFTER, url)
    return workers.start(env, f"{name}-{uuid.uuid4().hex[:4]}")


async def _finished_step(db: Database, name: str) -> bool:
    async with db.session() as session:
        found = await session.scalar(
            select(WorkflowStep.id).where(WorkflowStep.name == name, WorkflowStep.finished_at.is_not(None))
        )
    return found is not None


@pytest.mark.parametrize("after", ["branch", "push", "pull_request"])
@pytest.mark.parametrize("resume", ["restart", "other worker"])
async def test_a_worker_killed_after_a_stage_resumes_the_run_with_one_branch_and_one_pull_request(
    after: str,
    resume: str,
    shared_database: tuple[Database, str],
    github: tuple[str, FakeGitHub],
    tmp_path: Path,
    workers: Workers,
) -> None:
    db, url = shared_database
    api_url, fake = github
    remote = make_remote(tmp_path)
    if after == "branch":  # a slow push: the kill lands between the branch and the recorded push
        hook = remote / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\nsleep 2\n")
        hook.chmod(0o755)
    if after in ("push", "pull_request"):  # the PR is stored at once, its answer comes late: a crash window
        fake.pull_delay = 3.0
    box = SecretBox.from_settings(make_settings(tmp_path / "state", url))
    async with db.transaction() as session:
        project = Project(
            name="app", repository=str(remote), forge="github", owner="acme", repo_name="api", default_branch="main",
            forge_token=box.encrypt(fake_github.PERSONAL_TOKEN), settings={"forge_api_url": api_url},
        )  # fmt: skip
        session.add(project)
        await session.flush()
        await tasks.lock_project(session, project.id)
        task = await tasks.create_task(session, project=project, spec=TaskCreate(title="Write the store"))
        task_id = task.id
        started = await codegen.start(session, project.id, CodegenRequest(tasks=[1]), actor="tester")
        run_id = started.runs[0].id

    victim = _worker(workers, tmp_path, url, "alpha")

    async def reached() -> bool:
        assert victim.alive(), victim.log_path.read_text()
        if after == "branch":
            return await _finished_step(db, "checkout")
        if after == "push":
            return await _finished_step(db, "push")
        return bool(fake.state.pulls)

    await eventually(reached, what=f"the run to reach its {after} stage", timeout=90, interval=0.02)
    await victim.kill()
    async with db.session() as session:
        run = await session.get_one(WorkflowRun, run_id)
        assert run.status == "running", "the kill must land before the run finished"

    survivor = _worker(workers, tmp_path, url, "alpha" if resume == "restart" else "beta")

    async def finished() -> bool:
        assert survivor.alive(), survivor.log_path.read_text()
        async with db.session() as session:
            status = await session.scalar(select(WorkflowRun.status).where(WorkflowRun.id == run_id))
        return status not in ("pending", "running")

    await eventually(finished, what="the run to finish after the kill", timeout=120)
    async with db.session() as session:
        run = await session.get_one(WorkflowRun, run_id)
        pulls = (await session.scalars(select(PullRequest))).all()
        task = await session.get_one(Task, task_id)
    assert (run.status, run.error_message, run.attempts) == ("succeeded", None, 2)
    heads = git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").splitlines()
    assert sorted(heads) == ["main", BRANCH]
    assert [(p["head"], p["state"]) for p in fake.state.pulls] == [(BRANCH, "open")]
    assert [(p.number, p.task_id) for p in pulls] == [(1, task_id)]
    assert task.status == "review"
    if resume == "other worker":
        taken = [r for r in survivor.records() if r.get("event") == "taking over workflow run of a lost worker"]
        assert [r["run_id"] for r in taken] == [str(run_id)]
    survivor.close()
