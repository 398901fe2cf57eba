"""A pipeline run by the engine shows up on its forge: statuses per step and overall, one PR comment, an issue."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskmaster.db.models import Pipeline, Project, PullRequest
from taskmaster.secrets import SecretBox
from taskmaster.worker.forges import FORGE_API_URL, ForgeUpdates
from tests.forges.fakes.github import PERSONAL_TOKEN, FakeGitHub, serve_github

DEFINITION = """\
steps:
  build: {run: "echo built"}
  test: {run: "echo 'assert 1 == 2 failed'; exit 1", needs: [build], retries: 0}
"""


@pytest.fixture
def github() -> Iterator[tuple[str, FakeGitHub]]:
    with serve_github() as server:
        yield server


@pytest.mark.slow  # GitHub's client spaces writes a second apart, as GitHub asks
async def test_a_failed_pipeline_sets_statuses_comments_once_and_opens_an_issue(
    harness_factory: Callable[..., Any], github: tuple[str, FakeGitHub]
) -> None:
    url, fake = github
    harness = await harness_factory(DEFINITION)
    box = SecretBox.from_settings(harness.settings)
    pipeline = await harness.create()
    async with harness.db.transaction() as session:
        project = await session.get(Project, harness.project.id)
        assert project is not None
        project.forge, project.owner, project.repo_name = "github", "octo", "app"
        project.forge_token = box.encrypt(PERSONAL_TOKEN)
        project.settings = {FORGE_API_URL: url}
        pull = PullRequest(project_id=project.id, number=7, head_ref="main", head_sha=pipeline.commit_sha or "",
                           base_ref="main")  # fmt: skip
        session.add(pull)
        await session.flush()
        row = await session.get(Pipeline, pipeline.id)
        assert row is not None
        row.pull_request_id = pull.id

    updates = ForgeUpdates(harness.db, box)
    status = await harness.engine(on_change=updates).run(pipeline.id)
    assert status == "failed"

    final = {s["context"]: s["state"] for s in fake.state.statuses}  # later statuses replace earlier ones
    assert final == {"taskmaster/build": "success", "taskmaster/test": "failure", "taskmaster": "failure"}
    assert {s["sha"] for s in fake.state.statuses} == {pipeline.commit_sha}
    assert any(s["state"] == "pending" for s in fake.state.statuses)  # shown while it ran
    (comment,) = fake.comments_on("octo/app", 7)
    assert "test" in comment["body"] and "assert 1 == 2 failed" in comment["body"]
    (issue,) = fake.state.issues
    assert "test" in issue["title"] and (pipeline.commit_sha or "")[:7] in issue["title"]

    await updates(pipeline.id)  # a finished pipeline is reported once
    assert len(fake.state.issues) == 1 and len(fake.comments_on("octo/app", 7)) == 1
