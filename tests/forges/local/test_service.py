"""The local forge's use cases on real repositories: open, number, merge with git (bare and checked-out bases),
conflicts, refusals, new commits noticed, drafts marked ready, and the webhook deliveries each raises, processed into
pipelines."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from taskmaster.config import Settings
from taskmaster.core.errors import InvalidInput
from taskmaster.db.models import Pipeline, PullRequest, WebhookDelivery
from taskmaster.db.session import Database
from taskmaster.forges.base import ForgeConflict, ForgeNotFound, ForgeRejected
from taskmaster.forges.events import EventKind, Provider
from taskmaster.forges.github import webhooks as github
from taskmaster.forges.local import git as local_git
from taskmaster.forges.local import service
from taskmaster.forges.local.schemas import PullRequestCreate
from taskmaster.webhooks import service as webhooks
from tests.forges.fixtures import payload
from tests.forges.local.conftest import Repo, make_bare_origin
from tests.support.factories import make_project
from tests.support.git import commit, git


async def _open(db: Database, repo: Repo, head: str = "feature", **fields: Any) -> PullRequest:
    spec = PullRequestCreate(head=head, title=fields.pop("title", f"Add {head}"), **fields)
    async with db.transaction() as session:
        return await service.open_pull_request(session, repo.project.id, spec, author="alice")


async def _deliveries(db: Database) -> list[WebhookDelivery]:
    async with db.session() as session:
        return list((await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at))).all())


async def _drain(db: Database, settings: Settings) -> None:
    while await webhooks.process_next(db, settings):
        pass


async def _pipelines(db: Database) -> list[Pipeline]:
    async with db.session() as session:
        return list((await session.scalars(select(Pipeline).order_by(Pipeline.created_at))).all())


async def test_opening_stores_a_local_delivery_that_the_webhook_loop_turns_into_a_validation_pipeline(
    db: Database, settings: Settings, bare: Repo
) -> None:
    pull = await _open(db, bare, body="Adds a feature")

    assert (pull.number, pull.state, pull.head_sha, pull.base_ref) == (1, "open", bare.sha("feature"), "main")
    assert pull.base_sha == bare.sha("main") and pull.author == "alice" and pull.body == "Adds a feature"
    (delivery,) = await _deliveries(db)
    assert (delivery.provider, delivery.event, delivery.action, delivery.status) == (
        "local", "pull_request", "opened", "received"
    )  # fmt: skip
    event = webhooks.parse_delivery(delivery)
    assert (event.provider, event.kind, event.sender) == (Provider.LOCAL, EventKind.PR_OPENED, "alice")
    assert event.pull_request is not None and event.pull_request.head_sha == bare.sha("feature")

    await _drain(db, settings)
    (pipeline,) = await _pipelines(db)
    assert (pipeline.status, pipeline.commit_sha, pipeline.pull_request_id, pipeline.branch_name) == (
        "pending", bare.sha("feature"), pull.id, "feature"
    )  # fmt: skip
    assert pipeline.trigger_key == f"validation:pr1:{bare.sha('feature')}"
    assert pipeline.trigger_event == "local:pull_request:pr_opened"
    assert (await _deliveries(db))[0].status == "processed"


async def test_a_draft_gets_no_validation_pipeline_and_refuses_a_merge(
    db: Database, settings: Settings, bare: Repo
) -> None:
    pull = await _open(db, bare, draft=True)

    await _drain(db, settings)
    (delivery,) = await _deliveries(db)
    assert delivery.status == "processed" and delivery.result["ignored"].startswith("draft pull request")
    assert await _pipelines(db) == []
    with pytest.raises(ForgeConflict, match="#1 is a draft"):
        async with db.transaction() as session:
            await service.merge_pull_request(session, bare.project.id, pull.number, actor="bob")
    assert bare.sha("main") == pull.base_sha


async def test_a_draft_marked_ready_raises_githubs_ready_for_review_which_validates_its_latest_head(
    db: Database, settings: Settings, working: Repo
) -> None:
    pull = await _open(db, working, draft=True)
    await _drain(db, settings)
    git(working.path, "checkout", "-q", "feature")
    new_head = commit(working.path, "feature.txt", "finished feature\n")
    git(working.path, "checkout", "-q", "main")

    async with db.transaction() as session:
        ready = await service.mark_ready(session, working.project.id, pull.number, actor="bob")

    assert (ready.draft, ready.state, ready.head_sha) == (False, "open", new_head)
    deliveries = await _deliveries(db)
    assert [d.action for d in deliveries] == ["opened", "synchronize", "ready_for_review"]
    event = webhooks.parse_delivery(deliveries[-1])
    on_github = github.parse("pull_request", payload("github/pull_request/ready_for_review"))
    assert event.kind is on_github.kind is EventKind.PR_READY_FOR_REVIEW
    assert event.sender == "bob" and event.pull_request is not None and not event.pull_request.draft
    await _drain(db, settings)
    (pipeline,) = await _pipelines(db)  # the draft's opening and new commits requested none
    assert (pipeline.commit_sha, pipeline.pull_request_id, pipeline.status) == (new_head, pull.id, "pending")
    assert pipeline.trigger_event == "local:pull_request:pr_ready_for_review"
    with pytest.raises(ForgeConflict, match="#1 is not a draft: it is ready for review already"):
        async with db.transaction() as session:
            await service.mark_ready(session, working.project.id, pull.number, actor="bob")
    async with db.transaction() as session:
        merged = await service.merge_pull_request(session, working.project.id, pull.number, actor="bob")
    assert merged.merge_commit_sha == working.sha("main")


async def test_only_an_open_draft_of_a_local_project_can_be_marked_ready(db: Database, bare: Repo) -> None:
    await _open(db, bare, draft=True)
    async with db.transaction() as session:
        await service.close_pull_request(session, bare.project.id, 1, actor="bob")
    with pytest.raises(ForgeConflict, match="#1 is closed: only an open draft can be marked ready"):
        async with db.transaction() as session:
            await service.mark_ready(session, bare.project.id, 1, actor="bob")
    with pytest.raises(ForgeNotFound, match="has no pull request #7"):
        async with db.transaction() as session:
            await service.mark_ready(session, bare.project.id, 7, actor="bob")
    github_project = await make_project(db, repository="acme/api", forge="github", owner="acme", repo_name="api")
    with pytest.raises(InvalidInput, match="is on github"):
        async with db.transaction() as session:
            await service.mark_ready(session, github_project.id, 1, actor="bob")
    assert [d.action for d in await _deliveries(db)] == ["opened", "closed"]
    async with db.session() as session:
        stored = await session.scalar(select(PullRequest).where(PullRequest.project_id == bare.project.id))
    assert stored is not None and (stored.draft, stored.state) == (True, "closed")


async def test_a_merge_into_a_checked_out_base_keeps_the_dirty_working_tree_and_raises_the_github_merged_event(
    db: Database, settings: Settings, working: Repo
) -> None:
    before = working.sha("main")
    pull = await _open(db, working)

    async with db.transaction() as session:
        merged = await service.merge_pull_request(session, working.project.id, pull.number, actor="bob")

    head = working.sha("main")
    assert merged.merge_commit_sha == head and head != before
    assert git(working.path, "rev-list", "--parents", "-n", "1", head).split()[1:] == [before, working.sha("feature")]
    # The checkout follows the branch: the merged file is there, the uncommitted edit is untouched.
    assert (working.path / "feature.txt").read_text() == "new feature\n"
    assert (working.path / "notes.txt").read_text() == "mine, edited but not committed\n"
    assert git(working.path, "status", "--porcelain") == "M notes.txt"
    assert git(working.path, "symbolic-ref", "HEAD") == "refs/heads/main"

    local = webhooks.parse_delivery((await _deliveries(db))[-1])
    on_github = github.parse("pull_request", json.dumps(_github_merged(head)).encode())
    assert local.kind is on_github.kind is EventKind.PR_MERGED
    assert local.pull_request is not None and on_github.pull_request is not None
    for field in ("state", "merged", "merge_commit_sha", "number"):
        assert getattr(local.pull_request, field) == getattr(on_github.pull_request, field), field

    await _drain(db, settings)
    pipelines = await _pipelines(db)
    assert [(p.status, p.error_message) for p in pipelines] == [("canceled", "pull request merged")]


def _github_merged(merge_sha: str) -> dict[str, Any]:
    body: dict[str, Any] = payload("github/pull_request/opened")
    body["action"] = "closed"
    body["pull_request"].update(number=1, state="closed", merged=True, merge_commit_sha=merge_sha)
    return body


async def test_a_merge_into_a_bare_repository_and_a_squash_make_the_expected_commits(
    db: Database, bare: Repo, tmp_path: Path
) -> None:
    pull = await _open(db, bare)
    async with db.transaction() as session:
        await service.merge_pull_request(session, bare.project.id, pull.number, actor="bob", squash=True)
    head = bare.sha("main")
    assert len(git(bare.path, "rev-list", "--parents", "-n", "1", head).split()) == 2  # one parent: squashed
    assert git(bare.path, "show", f"{head}:feature.txt") == "new feature"
    assert git(bare.path, "log", "-1", "--format=%s", head) == "Add feature (#1)"


async def test_a_conflict_names_the_files_and_changes_nothing(db: Database, working: Repo) -> None:
    git(working.path, "checkout", "-q", "feature")
    commit(working.path, "README.md", "feature's readme\n")
    git(working.path, "checkout", "-q", "main")
    commit(working.path, "README.md", "main's readme\n")
    before = (working.sha("main"), working.sha("feature"))
    pull = await _open(db, working)

    with pytest.raises(ForgeConflict, match=r"conflicts in 1 file\(s\): README.md") as caught:
        async with db.transaction() as session:
            await service.merge_pull_request(session, working.project.id, pull.number, actor="bob")

    assert caught.value.extra["files"] == ["README.md"]
    assert (working.sha("main"), working.sha("feature")) == before
    assert (working.path / "README.md").read_text() == "main's readme\n"
    async with db.session() as session:
        _, again = await service.get_pull_request(session, working.project.id, pull.number)
    assert (again.state, again.merged) == ("open", False)
    assert [d.action for d in await _deliveries(db)] == ["opened"]


async def test_uncommitted_changes_the_merge_would_overwrite_refuse_it_before_anything_moves(
    db: Database, working: Repo
) -> None:
    (working.path / "feature.txt").write_text("an untracked file in the way\n")
    before = working.sha("main")
    pull = await _open(db, working)

    with pytest.raises(ForgeConflict, match=r"checked out in .* with uncommitted changes"):
        async with db.transaction() as session:
            await service.merge_pull_request(session, working.project.id, pull.number, actor="bob")
    assert working.sha("main") == before
    assert (working.path / "feature.txt").read_text() == "an untracked file in the way\n"


async def test_closed_and_merged_pull_requests_refuse_a_merge_and_closing_twice_is_no_error(
    db: Database, bare: Repo
) -> None:
    pull = await _open(db, bare)
    for _ in range(2):
        async with db.transaction() as session:
            closed = await service.close_pull_request(session, bare.project.id, pull.number, actor="bob")
    assert closed.state == "closed"
    with pytest.raises(ForgeConflict, match="#1 is closed: only an open pull request can be merged"):
        async with db.transaction() as session:
            await service.merge_pull_request(session, bare.project.id, pull.number, actor="bob")
    assert [d.action for d in await _deliveries(db)] == ["opened", "closed"]
    event = webhooks.parse_delivery((await _deliveries(db))[-1])
    assert event.kind is EventKind.PR_CLOSED and event.pull_request is not None
    assert not event.pull_request.merged


async def test_unknown_branches_a_head_equal_to_its_base_and_a_second_open_pull_request_are_refused(
    db: Database, bare: Repo
) -> None:
    with pytest.raises(ForgeNotFound, match="branch 'nope' does not exist in"):
        await _open(db, bare, head="nope")
    with pytest.raises(ForgeNotFound, match="branch 'release' does not exist"):
        await _open(db, bare, base="release")
    with pytest.raises(ForgeRejected, match="head and base are both 'main'"):
        await _open(db, bare, head="main")
    with pytest.raises(ForgeRejected, match="not a valid branch name"):
        await _open(db, bare, head="bad..name")
    await _open(db, bare)
    with pytest.raises(ForgeConflict, match="pull request #1 from 'feature' into 'main' is already open"):
        await _open(db, bare)
    with pytest.raises(ForgeNotFound, match="has no pull request #7"):
        async with db.transaction() as session:
            await service.merge_pull_request(session, bare.project.id, 7, actor="bob")


async def test_a_github_project_has_no_local_pull_requests_but_lists_those_it_knows(db: Database) -> None:
    project = await make_project(db, repository="acme/api", forge="github", owner="acme", repo_name="api")
    async with db.transaction() as session:
        session.add(PullRequest(project_id=project.id, number=5, head_ref="x", head_sha="a" * 40, base_ref="main",
                                state="open", title="From GitHub"))  # fmt: skip
    with pytest.raises(InvalidInput, match="is on github"):
        async with db.transaction() as session:
            await service.open_pull_request(session, project.id, PullRequestCreate(head="x", title="t"), author="a")
    async with db.transaction() as session:
        _, pulls = await service.list_pull_requests(session, project.id)
        assert [service.to_out(project, p).forge for p in pulls] == ["github"]


async def test_new_commits_on_the_head_are_noticed_when_read_and_supersede_the_pipeline(
    db: Database, settings: Settings, working: Repo
) -> None:
    pull = await _open(db, working)
    await _drain(db, settings)
    git(working.path, "checkout", "-q", "feature")
    new_head = commit(working.path, "feature.txt", "better feature\n")
    git(working.path, "checkout", "-q", "main")

    async with db.transaction() as session:
        _, pulls = await service.list_pull_requests(session, working.project.id)
    async with db.transaction() as session:  # read again: nothing new
        _, again = await service.get_pull_request(session, working.project.id, pull.number)

    assert pulls[0].head_sha == again.head_sha == new_head
    sync = webhooks.parse_delivery((await _deliveries(db))[-1])
    assert [d.action for d in await _deliveries(db)] == ["opened", "synchronize"]
    assert sync.kind is EventKind.PR_SYNCHRONIZED and sync.pull_request is not None
    assert sync.pull_request.previous_head_sha != new_head
    await _drain(db, settings)
    old, new = await _pipelines(db)
    assert (old.status, old.superseded_by, new.commit_sha) == ("canceled", new.id, new_head)


async def test_pull_requests_and_issues_share_one_number_sequence(db: Database, bare: Repo) -> None:
    await _open(db, bare)
    async with db.transaction() as session:
        _, issue = await service.create_issue(session, bare.project.id, title="Broken", body="b", labels=["bug"])
    git(bare.path, "branch", "other", "feature")
    second = await _open(db, bare, head="other")
    assert (issue.number, second.number) == (2, 3)


@pytest.mark.postgres
async def test_concurrent_openings_on_postgresql_take_distinct_numbers(tmp_path: Path) -> None:
    from tests.support.databases import settings_on

    async with settings_on("postgresql", tmp_path / "state") as settings:
        db = Database.from_settings(settings)
        try:
            from taskmaster.db.base import Base

            async with db.engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            path = make_bare_origin(tmp_path / "origin.git", tmp_path / "scratch")
            for index in range(8):
                git(path, "branch", f"topic-{index}", "feature")
            repo = Repo(path, await make_project(db, repository=str(path)))
            pulls = await asyncio.gather(*(_open(db, repo, head=f"topic-{index}") for index in range(8)))
            assert sorted(p.number for p in pulls) == list(range(1, 9))
            assert len(await _deliveries(db)) == 8
        finally:
            await db.dispose()


async def test_two_syncs_noticing_the_same_move_at_once_record_one_synchronize(
    db: Database, working: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    pull = await _open(db, working)
    git(working.path, "checkout", "-q", "feature")
    new_head = commit(working.path, "feature.txt", "better feature\n")
    git(working.path, "checkout", "-q", "main")
    # Both read the branches (real git) before either takes the project's lock: the race two workers, or a worker
    # and a reader, run when they notice one push.
    both_read = asyncio.Barrier(2)
    real_heads = local_git.branch_heads
    calls = 0

    async def heads_then_wait(repo: str, names: Collection[str]) -> dict[str, str]:
        nonlocal calls
        calls += 1
        heads = await real_heads(repo, names)
        if calls <= 2:
            await both_read.wait()
        return heads

    monkeypatch.setattr(local_git, "branch_heads", heads_then_wait)

    async def sync() -> list[int]:
        async with db.transaction() as session:
            return [p.number for p in await service.sync_heads(session, working.project)]

    results = await asyncio.gather(sync(), sync())

    assert calls == 4  # each read once before the lock and once under it: both saw the move
    assert sorted(results) == [[], [pull.number]]
    assert [d.action for d in await _deliveries(db)] == ["opened", "synchronize"]
    async with db.session() as session:
        stored = await session.scalar(select(PullRequest.head_sha).where(PullRequest.id == pull.id))
    assert stored == new_head


async def test_a_deleted_head_branch_and_a_branch_under_its_name_leave_the_pull_request_as_it_was(
    db: Database, bare: Repo
) -> None:
    pull = await _open(db, bare)
    git(bare.path, "branch", "-D", "feature")
    git(bare.path, "branch", "feature/next", "main")  # matches the pattern `refs/heads/feature`, not the name

    async with db.transaction() as session:
        moved = await service.sync_heads(session, bare.project)

    assert moved == []
    assert [d.action for d in await _deliveries(db)] == ["opened"]
    async with db.session() as session:
        assert await session.scalar(select(PullRequest.head_sha).where(PullRequest.id == pull.id)) == pull.head_sha


async def test_a_vanished_repository_is_named_by_a_sync_and_a_merge_while_reads_show_what_was_stored(
    db: Database, bare: Repo
) -> None:
    pull = await _open(db, bare)
    shutil.rmtree(bare.path)

    with pytest.raises(ForgeNotFound, match=f"repository {bare.path} does not exist"):
        async with db.transaction() as session:
            await service.sync_heads(session, bare.project)
    with pytest.raises(ForgeNotFound, match=f"repository {bare.path} does not exist"):
        async with db.transaction() as session:
            await service.merge_pull_request(session, bare.project.id, pull.number, actor="bob")
    async with db.transaction() as session:
        _, pulls = await service.list_pull_requests(session, bare.project.id)
        _, shown = await service.get_pull_request(session, bare.project.id, pull.number)

    assert [p.number for p in pulls] == [pull.number] and shown.head_sha == pull.head_sha
