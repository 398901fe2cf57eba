"""`LocalForge` as the `Forge` protocol: made by the runtime's forge factory for a local project, each call one
transaction; what reports leave (statuses, check runs, the marked comment, reviews) is stored and shown."""

from __future__ import annotations

import asyncio
import getpass

import pytest

from taskmaster.config import Settings
from taskmaster.core.errors import InvalidInput
from taskmaster.db.session import Database
from taskmaster.forges.base import (
    Annotation,
    CheckConclusion,
    CheckRunSpec,
    CheckStatus,
    CommitState,
    ForgeCapabilities,
    ForgeConflict,
    ForgeNotFound,
    ForgeRejected,
    Permission,
    PullRequestDetails,
    ReviewComment,
    comment_marker,
)
from taskmaster.forges.local import service
from taskmaster.forges.local.forge import LocalForge
from taskmaster.runtime import Runtime
from tests.forges.local.conftest import Repo
from tests.support.factories import make_project


@pytest.fixture
async def forge(db: Database, settings: Settings, bare: Repo) -> LocalForge:
    runtime = Runtime(settings, db)
    made = runtime.forges.for_project(bare.project)
    assert isinstance(made, LocalForge)
    return made


async def test_the_runtime_makes_a_local_forge_for_a_local_path_project_only(
    db: Database, settings: Settings, forge: LocalForge
) -> None:
    runtime = Runtime(settings, db)
    remote = await make_project(db, repository="https://example.com/a.git", forge="local")
    assert runtime.forges.for_project(remote) is None
    assert forge.name == "local"
    assert forge.capabilities == ForgeCapabilities(check_runs=True, annotations=True, inline_review_comments=True)


async def test_branches_pull_requests_merge_at_a_sha_and_files_through_the_protocol(
    forge: LocalForge, bare: Repo
) -> None:
    repo = str(bare.path)
    await forge.create_branch(repo, "taskmaster/1-task", bare.sha("feature"))
    with pytest.raises(ForgeConflict, match="already exists"):
        await forge.create_branch(repo, "taskmaster/1-task", bare.sha("main"))
    with pytest.raises(ForgeNotFound, match=r"commit 'f{40}' does not exist"):
        await forge.create_branch(repo, "other", "f" * 40)

    with pytest.raises(ForgeRejected, match=r"title: .*at least 1 character"):
        await forge.create_pull_request(repo, head="taskmaster/1-task", base="main", title="", body="b")
    opened = await forge.create_pull_request(repo, head="taskmaster/1-task", base="main", title="Task 1", body="b")
    before = await forge.get_pull_request(repo, opened.number)
    assert before == PullRequestDetails(
        number=1, url=opened.url, title="Task 1", state="open", draft=False, head_ref="taskmaster/1-task",
        head_sha=bare.sha("feature"), base_ref="main",
    )  # fmt: skip
    with pytest.raises(ForgeConflict, match="the head moved"):
        await forge.merge_pull_request(repo, 1, sha=bare.sha("main"))
    merged = await forge.merge_pull_request(repo, 1, sha=before.head_sha)
    after = await forge.get_pull_request(repo, 1)
    assert (after.state, after.merge_commit_sha, bare.sha("main")) == ("merged", merged, merged)
    with pytest.raises(ForgeConflict):
        await forge.close_pull_request(repo, 1)

    assert await forge.read_file(repo, "feature.txt", "main") == b"new feature\n"
    assert await forge.read_file(repo, "absent.txt", "main") is None
    assert await forge.read_file(repo, "feature.txt", "no-such-ref") is None
    with pytest.raises(ForgeNotFound, match="is not the repository of project"):
        await forge.read_file("/elsewhere/repo", "feature.txt", "main")


async def test_one_comment_per_marker_statuses_check_runs_and_reviews_are_stored_and_shown(
    db: Database, forge: LocalForge, bare: Repo
) -> None:
    repo = str(bare.path)
    pull = await forge.create_pull_request(repo, head="feature", base="main", title="t", body="b")
    sha = bare.sha("feature")

    ids = await asyncio.gather(*(forge.upsert_comment(repo, 1, marker="summary", body=f"v{i}") for i in range(4)))
    assert len(set(ids)) == 1
    await forge.upsert_comment(repo, 1, marker="summary", body="final")
    await forge.set_commit_status(repo, sha, context="taskmaster", state=CommitState.PENDING)
    await forge.set_commit_status(repo, sha, context="taskmaster", state=CommitState.FAILURE, description="lint")
    check = await forge.create_check_run(repo, CheckRunSpec(name="taskmaster", head_sha=sha))
    done = CheckRunSpec(
        name="taskmaster", head_sha=sha, status=CheckStatus.COMPLETED, conclusion=CheckConclusion.FAILURE,
        title="1 failing step", annotations=(Annotation(path="app.py", start_line=3, end_line=3, message="E1"),),
    )  # fmt: skip
    await forge.update_check_run(repo, check, done)
    with pytest.raises(ForgeNotFound):
        await forge.update_check_run(repo, "not-an-id", done)
    review = await forge.create_review(
        repo, 1, commit_sha=sha, body="Two findings",
        comments=[ReviewComment(path="app.py", line=4, start_line=2, body="a bug")],
    )  # fmt: skip
    with pytest.raises(InvalidInput, match="1 <= start_line <= line"):  # refused before it reaches the forge
        ReviewComment("a", 1, 5, "x")

    async with db.transaction() as session:
        project, row = await service.get_pull_request(session, bare.project.id, pull.number)
        shown = await service.detail(session, project, row)
    assert [(c.marker, c.body) for c in shown.comments] == [("summary", f"{comment_marker('summary')}\nfinal")]
    assert [(s.context, s.state, s.description) for s in shown.statuses] == [("taskmaster", "failure", "lint")]
    (run,) = shown.check_runs
    assert (str(run.id), run.conclusion, run.title) == (check, "failure", "1 failing step")
    assert run.annotations == [
        {"path": "app.py", "start_line": 3, "end_line": 3, "message": "E1", "level": "failure", "title": None}
    ]
    assert [(str(r.id), r.body, r.comments) for r in shown.reviews] == [
        (review, "Two findings", [{"path": "app.py", "line": 4, "start_line": 2, "body": "a bug"}])
    ]


async def test_issues_take_the_next_number_and_the_local_user_may_write(forge: LocalForge, bare: Repo) -> None:
    repo = str(bare.path)
    first = await forge.create_issue(repo, title="Manual review needed", body="evidence", labels=["taskmaster"])
    second = await forge.create_issue(repo, title="Another", body="")
    assert (first.number, second.number) == (1, 2)
    assert first.url.endswith(f"/projects/{bare.project.id}/issues/1")
    assert await forge.user_permission(repo, getpass.getuser()) is Permission.ADMIN
    assert await forge.user_permission(repo, "stranger") is Permission.NONE
