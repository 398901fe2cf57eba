"""Creating runs: refs resolved through the mirror, `.taskmaster.yml` at the commit or the default, webhook rows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from taskmaster.core.errors import Conflict, NotFound
from taskmaster.db.models import Pipeline, PipelineStep
from taskmaster.pipelines.plan import Plan
from taskmaster.pipelines.runs import plan_pipeline
from tests.support import commit, git
from tests.support.pipelines import Harness


async def _steps(harness: Harness, pipeline_id: Any) -> list[PipelineStep]:
    async with harness.db.session() as session:
        rows = await session.scalars(
            select(PipelineStep).where(PipelineStep.pipeline_id == pipeline_id).order_by(PipelineStep.position)
        )
        return list(rows)


async def test_a_branch_tag_or_sha_resolves_and_the_commits_definition_becomes_plan_and_steps(
    harness_factory: Any,
) -> None:
    harness: Harness = await harness_factory(
        "concurrency: 2\nsteps:\n  a: {run: 'true'}\n  b: {run: 'true', needs: [a]}\n"
    )
    sha = git(harness.repo, "rev-parse", "HEAD")
    git(harness.repo, "tag", "v1")
    by_branch = await harness.create("main")
    by_tag = await harness.create("v1")
    by_sha = await harness.create(sha[:10])
    assert {by_branch.commit_sha, by_tag.commit_sha, by_sha.commit_sha} == {sha}
    assert (by_branch.branch_name, by_tag.branch_name, by_sha.branch_name) == ("main", "v1", None)
    plan = Plan.from_json(by_branch.definition)
    assert plan.names == ("a", "b") and plan.concurrency == 2
    steps = await _steps(harness, by_branch.id)
    assert [(s.step_name, s.position, s.needs, s.status, s.max_retries) for s in steps] == [
        ("a", 0, [], "pending", 3),
        ("b", 1, ["a"], "waiting", 3),
    ]
    assert steps[1].config == plan["b"].to_json()


async def test_a_repository_without_a_definition_gets_the_default_validation_pipeline(harness_factory: Any) -> None:
    harness: Harness = await harness_factory(None)
    created = await harness.create()
    assert [s.step_name for s in await _steps(harness, created.id)] == [
        "checkout", "install", "lint", "test", "ai_review",
    ]  # fmt: skip


async def test_an_unknown_ref_is_not_found_and_creates_nothing(harness_factory: Any) -> None:
    harness: Harness = await harness_factory("steps:\n  a: {run: 'true'}\n")
    with pytest.raises(NotFound, match="no-such-branch"):
        await harness.create("no-such-branch")
    async with harness.db.session() as session:
        assert (await session.scalars(select(Pipeline))).all() == []


async def test_a_webhook_requested_pending_pipeline_is_planned_in_place(harness_factory: Any) -> None:
    harness: Harness = await harness_factory("steps:\n  a: {run: 'true'}\n")
    sha = git(harness.repo, "rev-parse", "HEAD")
    async with harness.db.transaction() as session:
        row = Pipeline(
            project_id=harness.project.id, commit_sha=sha, status="pending", trigger_key=f"validation:pr1:{sha}"
        )
        session.add(row)
    async with harness.db.transaction() as session:
        pipeline = await session.get(Pipeline, row.id)
        assert pipeline is not None
        await plan_pipeline(session, pipeline, mirror=harness.mirror)
        assert Plan.from_json(pipeline.definition).names == ("a",)
    assert [s.step_name for s in await _steps(harness, row.id)] == ["a"]
    async with harness.db.transaction() as session:
        pipeline = await session.get(Pipeline, row.id)
        assert pipeline is not None
        pipeline.status = "running"
        with pytest.raises(Conflict):
            await plan_pipeline(session, pipeline, mirror=harness.mirror)


async def test_the_default_pipeline_is_detected_at_the_commit_and_oversized_files_are_not_read(
    harness_factory: Any,
) -> None:
    harness: Harness = await harness_factory(None)
    commit(harness.repo, "package.json", '{"scripts": {"test": "node --test"}}')
    commit(harness.repo, "package-lock.json", "{}")
    node = Plan.from_json((await harness.create()).definition)
    commit(harness.repo, "package.json", '{"scripts": {"test": "node --test"}, "x": "' + "y" * (300 * 1024) + '"}')
    oversized = Plan.from_json((await harness.create()).definition)

    assert "npm ci" in (node["install"].command or "") and (node["test"].command or "").endswith("npm test")
    assert "nothing to test" in (oversized["test"].command or "")  # its scripts were never read


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (
            'steps:\n  a: {run: "echo \\0 x"}\n',
            ".taskmaster.yml:2: steps.a.run: the character U+0000 (NUL) is not allowed",
        ),
        (
            'steps:\n  a:\n    run: "true"\n    env: {X: "1\\0"}\n',
            ".taskmaster.yml:4: steps.a.env.X: the character U+0000 (NUL) is not allowed",
        ),
        (
            'steps:\n  "a\\0b": {run: "true"}\n',
            ".taskmaster.yml:2: steps.a\\0b: the character U+0000 (NUL) is not allowed",
        ),
        (
            'steps:\n  a:\n    run: "true"\n    env: {"X\\0": "1"}\n',
            ".taskmaster.yml:4: steps.a.env.X\\0: the character U+0000 (NUL) is not allowed",
        ),
        (
            'steps:\n  a: {run: "true"}\n  b: {run: "true", needs: ["a\\0"]}\n',
            ".taskmaster.yml:3: steps.b.needs[0]: the character U+0000 (NUL) is not allowed",
        ),
    ],
    ids=["command", "env-value", "step-name", "env-key", "needs"],
)
async def test_a_nul_character_in_the_definition_makes_an_error_pipeline_naming_its_line(
    harness_factory: Any, definition: str, expected: str
) -> None:
    harness: Harness = await harness_factory(definition)
    created = await harness.create()
    assert (created.status, created.failure_reason, created.error_message) == ("error", "code", expected)
    async with harness.db.session() as session:
        stored = await session.get(Pipeline, created.id)
    assert stored is not None and (stored.status, stored.error_message) == ("error", expected)
    assert await _steps(harness, created.id) == []
