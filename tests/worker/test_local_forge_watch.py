"""The worker's watch over the local forge, on SQLite and PostgreSQL: a `git push` (or a commit) to an open local pull
request's head branch raises one `synchronize` event and starts the new head's pipeline with nobody reading the pull
request; later polls record nothing more; a repository that vanished is warned about once and stops nothing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from taskmaster.config.settings import ForgeSettings
from taskmaster.db.models import Pipeline, PullRequest, WebhookDelivery
from taskmaster.db.session import Database
from taskmaster.forges.local import service
from taskmaster.forges.local.schemas import PullRequestCreate
from taskmaster.runtime import Runtime
from taskmaster.worker.localforge import LocalForgeWatch
from taskmaster.worker.runtime import WorkerRuntime
from tests.forges.local.conftest import make_working_repo
from tests.support import LogCapture, commit, eventually, git, make_project
from tests.support.workers import with_worker

POLL = 0.2


async def _open(db: Database, project_id: Any, head: str = "feature") -> PullRequest:
    async with db.transaction() as session:
        spec = PullRequestCreate(head=head, title=f"Add {head}")
        return await service.open_pull_request(session, project_id, spec, author="alice")


async def _deliveries(db: Database, project_id: Any = None) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).order_by(WebhookDelivery.created_at, WebhookDelivery.id)
    if project_id is not None:
        query = query.where(WebhookDelivery.project_id == project_id)
    async with db.session() as session:
        return list((await session.scalars(query)).all())


async def _head_of(db: Database, pull: PullRequest) -> str:
    async with db.session() as session:
        sha = await session.scalar(select(PullRequest.head_sha).where(PullRequest.id == pull.id))
    assert sha is not None
    return sha


def _new_commit_on_feature(repo: Path, content: str) -> str:
    git(repo, "checkout", "-q", "feature")
    sha = commit(repo, "feature.txt", content)
    git(repo, "checkout", "-q", "main")
    return sha


async def test_a_push_to_the_head_branch_starts_its_pipeline_with_nobody_reading_the_pull_request(
    harness_factory: Callable[..., Any], tmp_path: Path
) -> None:
    harness = await harness_factory("steps:\n  hello: {run: 'test -f feature.txt'}\n")
    git(harness.repo, "checkout", "-q", "-b", "feature")
    first = commit(harness.repo, "feature.txt", "one\n")
    git(harness.repo, "checkout", "-q", "main")
    settings = with_worker(harness.settings, id="watcher", heartbeat_seconds=0.5)
    settings = settings.model_copy(update={"forges": ForgeSettings(local_poll_seconds=POLL)})
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--branch", "feature", str(harness.repo), str(clone))

    async def passed(sha: str) -> Pipeline | None:
        async with harness.db.session() as session:
            row = await session.scalar(select(Pipeline).where(Pipeline.commit_sha == sha))
        return row if row is not None and row.status == "success" else None

    worker = WorkerRuntime(Runtime(settings, harness.db), mode="in-process")
    await worker.start()
    try:
        pull = await _open(harness.db, harness.project.id)
        await eventually(lambda: passed(first), timeout=90, interval=0.2, what="the opened head's pipeline to pass")
        # Someone's clone pushes a new commit to the pull request's branch while the worker runs.
        pushed = commit(clone, "feature.txt", "two\n")
        git(clone, "push", "-q", "origin", "feature")
        pipeline = await eventually(lambda: passed(pushed), timeout=90, interval=0.2,
                                    what="the pushed head's pipeline to pass")  # fmt: skip
        recorded = [(d.action, d.status) for d in await _deliveries(harness.db)]
        await worker.local_forge.drain()  # one more poll, by hand, besides those the loop keeps making
    finally:
        await worker.stop()

    assert recorded == [("opened", "processed"), ("synchronize", "processed")]
    assert [d.action for d in await _deliveries(harness.db)] == ["opened", "synchronize"]
    assert await _head_of(harness.db, pull) == pushed
    assert (pipeline.pull_request_id, pipeline.branch_name, pipeline.trigger_event) == (
        pull.id, "feature", "local:pull_request:pr_synchronized"
    )  # fmt: skip


async def test_one_poll_records_one_synchronize_per_moved_head_and_the_next_records_nothing(
    db: Database, tmp_path: Path
) -> None:
    repo = make_working_repo(tmp_path / "repo")
    project = await make_project(db, repository=str(repo))
    git(repo, "branch", "other", "feature")
    first, second = await _open(db, project.id), await _open(db, project.id, head="other")
    new_head = _new_commit_on_feature(repo, "better\n")
    events: list[bool] = []
    watch = LocalForgeWatch(db, poll_seconds=60, on_event=lambda: events.append(True))

    await watch.drain()
    after_first = [d.action for d in await _deliveries(db)]
    await watch.drain()

    assert after_first == ["opened", "opened", "synchronize"]
    assert [d.action for d in await _deliveries(db)] == after_first
    assert events == [True]  # woken once, by the poll that recorded something
    assert (await _head_of(db, first), await _head_of(db, second)) == (new_head, second.head_sha)
    sync = json.loads((await _deliveries(db))[-1].body)
    assert (sync["action"], sync["pull_request"]["number"]) == ("synchronize", first.number)
    assert (sync["pull_request"]["previous_head_sha"], sync["pull_request"]["head_sha"]) == (first.head_sha, new_head)


async def test_only_local_projects_with_open_pull_requests_are_watched(db: Database, tmp_path: Path) -> None:
    watched = await make_project(db, repository=str(make_working_repo(tmp_path / "watched")))
    closed = await make_project(db, repository=str(make_working_repo(tmp_path / "closed")))
    idle = await make_project(db, repository=str(make_working_repo(tmp_path / "idle")))
    on_github = await make_project(db, repository="acme/app", forge="github")
    await _open(db, watched.id)
    pull = await _open(db, closed.id)
    async with db.transaction() as session:
        await service.close_pull_request(session, closed.id, pull.number, actor="alice")
        session.add(PullRequest(project_id=on_github.id, number=7, head_ref="x", head_sha="a" * 40, base_ref="main",
                                state="open", title="From GitHub"))  # fmt: skip

    async with db.session() as session:
        projects = await service.watched_projects(session)

    assert [p.id for p in projects] == [watched.id]
    assert idle.id not in {p.id for p in projects}


async def test_a_vanished_repository_is_warned_about_once_and_the_running_loop_still_notices_other_pushes(
    db: Database, tmp_path: Path, json_logs: LogCapture
) -> None:
    gone_repo = make_working_repo(tmp_path / "gone")
    gone = await make_project(db, "gone", repository=str(gone_repo))
    live_repo = make_working_repo(tmp_path / "live")
    live = await make_project(db, "live", repository=str(live_repo))
    await _open(db, gone.id)
    pull = await _open(db, live.id)
    shutil.rmtree(gone_repo)
    watch = LocalForgeWatch(db, poll_seconds=POLL)
    watch.start()
    try:
        for content in ("first\n", "second\n"):
            head = _new_commit_on_feature(live_repo, content)

            async def recorded(sha: str = head) -> bool:
                return await _head_of(db, pull) == sha

            await eventually(recorded, timeout=20, what="the running loop to notice the new head")
        gone_repo.mkdir()  # back, as an empty directory: still no repository, still no second warning
        await watch.drain()
    finally:
        await watch.stop()

    assert [d.action for d in await _deliveries(db, live.id)] == ["opened", "synchronize", "synchronize"]
    assert [d.action for d in await _deliveries(db, gone.id)] == ["opened"]
    warnings = [r for r in json_logs.records() if r.get("logger") == "taskmaster.worker.localforge"
                and r.get("level") == "warning"]  # fmt: skip
    assert [(w["project"], w["repository"]) for w in warnings] == [("gone", str(gone_repo))]
    assert "does not exist" in warnings[0]["error"]


async def test_a_repository_that_comes_back_is_watched_again(
    db: Database, tmp_path: Path, json_logs: LogCapture
) -> None:
    repo = make_working_repo(tmp_path / "repo")
    project = await make_project(db, "moved", repository=str(repo))
    pull = await _open(db, project.id)
    aside = tmp_path / "aside"
    repo.rename(aside)
    watch = LocalForgeWatch(db, poll_seconds=60)

    await watch.drain()
    aside.rename(repo)
    new_head = _new_commit_on_feature(repo, "after the move\n")
    await watch.drain()

    assert await _head_of(db, pull) == new_head
    events = [
        (r["level"], r["event"]) for r in json_logs.records() if r.get("logger") == "taskmaster.worker.localforge"
    ]
    assert [level for level, _ in events] == ["warning", "info", "info"]
    assert "is back" in events[1][1] and "new commits" in events[2][1]
