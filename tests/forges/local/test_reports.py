"""A pipeline of a local-forge pull request reports to the local forge as to any other: statuses, one check run,
the pull request's comment and an issue for manual review, all shown with the pull request; and the runtime's
local forge wakes the webhook loop of a worker on the same runtime."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from taskmaster.config import Settings
from taskmaster.db.models import Pipeline, WebhookDelivery
from taskmaster.db.session import Database
from taskmaster.forges.local import service
from taskmaster.forges.local.forge import LocalForge
from taskmaster.forges.local.schemas import PullRequestCreate
from taskmaster.runtime import Runtime
from taskmaster.worker.forges import ForgeUpdates
from taskmaster.worker.runtime import WorkerRuntime
from tests.forges.local.conftest import Repo
from tests.support.git import commit, git

DEFINITION = """\
steps:
  build: {run: "echo built"}
  test: {run: "echo 'assert 1 == 2 failed'; exit 1", needs: [build], retries: 0}
"""


@pytest.mark.slow
async def test_a_failed_pipeline_of_a_local_pull_request_leaves_statuses_a_check_run_a_comment_and_an_issue(
    harness_factory: Callable[..., Any],
) -> None:
    harness = await harness_factory(DEFINITION)
    git(harness.repo, "branch", "feature", "main")
    async with harness.db.transaction() as session:
        pull = await service.open_pull_request(
            session, harness.project.id, PullRequestCreate(head="feature", title="Add tests"), author="alice"
        )
    pipeline = await harness.create("feature")
    async with harness.db.transaction() as session:
        row = await session.get(Pipeline, pipeline.id)
        assert row is not None
        row.pull_request_id = pull.id

    runtime = Runtime(harness.settings, harness.db)
    updates = ForgeUpdates(harness.db, runtime.forges)
    assert await harness.engine(on_change=updates).run(pipeline.id) == "failed"
    await updates.drain()

    async with harness.db.transaction() as session:
        project, row = await service.get_pull_request(session, harness.project.id, pull.number)
        shown = await service.detail(session, project, row)
        _, issues = await service.list_issues(session, harness.project.id)
    states = {s.context: s.state for s in shown.statuses}
    assert states == {"taskmaster/build": "success", "taskmaster/test": "failure", "taskmaster": "failure"}
    (check,) = shown.check_runs  # one run per pipeline, updated in place
    assert (check.status, check.conclusion) == ("completed", "failure")
    (comment,) = shown.comments
    assert "assert 1 == 2 failed" in comment.body
    (issue,) = issues
    assert "test" in issue.title and issue.number == 2  # after the pull request, in the same sequence


async def test_a_local_event_wakes_the_webhook_loop_of_the_runtime(
    db: Database, settings: Settings, bare: Repo
) -> None:
    runtime = Runtime(settings, db)
    woken: list[bool] = []
    runtime.wake_webhooks = lambda: woken.append(True)
    forge = runtime.forges.for_project(bare.project)
    assert isinstance(forge, LocalForge)
    await forge.create_pull_request(str(bare.path), head="feature", base="main", title="t", body="")
    await forge.close_pull_request(str(bare.path), 1)
    assert woken == [True, True]


async def _wait_for(check: Callable[[], Any], timeout: float = 90) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.2)
    return found


@pytest.mark.slow
async def test_with_a_worker_running_an_opened_pull_request_is_validated_reported_and_merged(
    harness_factory: Callable[..., Any],
) -> None:
    harness = await harness_factory("steps:\n  hello: {run: 'test -f feature.txt'}\n")
    git(harness.repo, "checkout", "-q", "-b", "feature")
    head = commit(harness.repo, "feature.txt", "new\n")
    git(harness.repo, "checkout", "-q", "main")
    runtime = Runtime(harness.settings, harness.db)
    worker = WorkerRuntime(runtime, mode="in-process")
    await worker.start()
    try:
        forge = runtime.forges.for_project(harness.project)
        assert isinstance(forge, LocalForge)
        opened = await forge.create_pull_request(str(harness.repo), head="feature", base="main", title="t", body="")

        async def reported() -> Any:
            async with harness.db.transaction() as session:
                project, pull = await service.get_pull_request(session, harness.project.id, opened.number)
                shown = await service.detail(session, project, pull)
            done = {s.context: s.state for s in shown.statuses}.get("taskmaster") == "success"
            return shown if done else None

        shown = await _wait_for(reported)
        assert [(p.status, p.commit_sha) for p in shown.pipelines] == [("success", head)]
        merged = await forge.merge_pull_request(str(harness.repo), opened.number, sha=head)

        async def processed() -> bool:
            async with harness.db.session() as session:
                rows = (await session.scalars(select(WebhookDelivery))).all()
            return len(rows) == 2 and all(r.status == "processed" for r in rows)

        await _wait_for(processed)
    finally:
        await worker.stop()
    assert git(harness.repo, "rev-parse", "main") == merged
    async with harness.db.session() as session:
        results = [d.result["kind"] for d in (await session.scalars(select(WebhookDelivery))).all()]
    assert sorted(results) == ["pr_merged", "pr_opened"]
