"""A pipeline run by the engine shows up on its forge: statuses per step and overall, one PR comment, an issue;
as a GitHub App, also one check run per pipeline that ends completed with the failing step's log findings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from taskmaster.config.settings import GitHubSettings
from taskmaster.db.models import Pipeline, Project, PullRequest
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.forges import ForgeFactory
from taskmaster.secrets import SecretBox
from taskmaster.worker.forges import ForgeUpdates
from tests.forges.fakes.github import PERSONAL_TOKEN, FakeGitHub, serve_github

DEFINITION = """\
steps:
  build: {run: "echo built"}
  test: {run: "echo 'assert 1 == 2 failed'; exit 1", needs: [build], retries: 0}
"""
FINDINGS = 75
"""Lines the failing step prints in `path:line: message` form: more than one batch of 50 annotations."""
FINDINGS_DEFINITION = f"""\
steps:
  build: {{run: "echo built"}}
  test:
    run: 'i=1; while [ $i -le {FINDINGS} ]; do echo "src/app.py:$i: error: E$i failed"; i=$((i+1)); done; exit 1'
    needs: [build]
    retries: 0
"""
APP_ID = 4242
INSTALLATION = 77


@pytest.fixture
def github() -> Iterator[tuple[str, FakeGitHub]]:
    with serve_github() as server:
        yield server


async def on_github(harness: Any, box: SecretBox, pipeline: Pipeline, *, settings: dict[str, str]) -> None:
    """Make the harness's project `octo/app` on GitHub with a personal token, and the pipeline one of PR #7."""
    async with harness.db.transaction() as session:
        project = await session.get(Project, harness.project.id)
        assert project is not None
        project.forge, project.owner, project.repo_name = "github", "octo", "app"
        project.forge_token = box.encrypt(PERSONAL_TOKEN)
        project.settings = settings
        pull = PullRequest(project_id=project.id, number=7, head_ref="main", head_sha=pipeline.commit_sha or "",
                           base_ref="main")  # fmt: skip
        session.add(pull)
        await session.flush()
        row = await session.get(Pipeline, pipeline.id)
        assert row is not None
        row.pull_request_id = pull.id


async def as_the_github_app(
    harness: Any, box: SecretBox, pipeline: Pipeline, github: tuple[str, FakeGitHub], app_key: tuple[str, str]
) -> Any:
    """`on_github`, with the fake GitHub's App installed on `octo/app`; the settings that make Taskmaster that App."""
    url, fake = github
    private, public = app_key
    fake.app_id, fake.app_public_key, fake.installations = APP_ID, public, {"octo/app": INSTALLATION}
    fake.check_runs_need_app = True
    await on_github(harness, box, pipeline, settings={})  # the App's API URL serves projects without their own
    app = GitHubSettings(api_url=url, app_id=APP_ID, private_key=SecretStr(private))
    return harness.settings.model_copy(update={"github": app})


@pytest.mark.slow  # GitHub's client spaces writes a second apart, as GitHub asks
async def test_a_failed_pipeline_sets_statuses_comments_once_and_opens_an_issue(
    harness_factory: Callable[..., Any], github: tuple[str, FakeGitHub]
) -> None:
    url, fake = github
    harness = await harness_factory(DEFINITION)
    box = SecretBox.from_settings(harness.settings)
    pipeline = await harness.create()
    await on_github(harness, box, pipeline, settings={"forge_api_url": url})

    updates = ForgeUpdates(harness.db, ForgeFactory(harness.settings, Credentials(box)))
    status = await harness.engine(on_change=updates).run(pipeline.id)
    assert status == "failed"
    await updates.drain()  # reports go out in the background

    final = {s["context"]: s["state"] for s in fake.state.statuses}  # later statuses replace earlier ones
    assert final == {"taskmaster/build": "success", "taskmaster/test": "failure", "taskmaster": "failure"}
    assert {s["sha"] for s in fake.state.statuses} == {pipeline.commit_sha}
    assert any(s["state"] == "pending" for s in fake.state.statuses)  # shown while it ran
    (comment,) = fake.comments_on("octo/app", 7)
    assert "test" in comment["body"] and "assert 1 == 2 failed" in comment["body"]
    (issue,) = fake.state.issues
    assert "test" in issue["title"] and (pipeline.commit_sha or "")[:7] in issue["title"]
    assert fake.matching(path_contains="/check-runs") == []  # a personal token gets statuses only

    await updates(pipeline.id)  # a finished pipeline is reported once
    await updates.drain()
    assert len(fake.state.issues) == 1 and len(fake.comments_on("octo/app", 7)) == 1


@pytest.mark.slow  # GitHub's client spaces writes a second apart, as GitHub asks
async def test_as_a_github_app_a_failed_pipeline_gets_one_check_run_with_its_findings_and_one_token(
    harness_factory: Callable[..., Any], github: tuple[str, FakeGitHub], app_key: tuple[str, str]
) -> None:
    fake = github[1]
    harness = await harness_factory(FINDINGS_DEFINITION)
    box = SecretBox.from_settings(harness.settings)
    pipeline = await harness.create()
    settings = await as_the_github_app(harness, box, pipeline, github, app_key)

    updates = ForgeUpdates(harness.db, ForgeFactory(settings, Credentials(box)))
    try:
        status = await harness.engine(on_change=updates).run(pipeline.id)
        assert status == "failed"
        await updates.drain()  # reports go out in the background
        await updates(pipeline.id)  # a finished pipeline is reported once
        await updates.drain()
    finally:
        await updates.aclose()

    (run,) = fake.state.check_runs.values()
    assert (run["name"], run["head_sha"], run["external_id"]) == ("taskmaster", pipeline.commit_sha, str(pipeline.id))
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    assert run["title"].startswith("Failed at test")
    assert run["summary"].startswith("**Failed at test")
    assert "| build | ✅ passed |" in run["summary"] and "| test | ❌ failed" in run["summary"]
    assert "E75 failed" in run["text"]  # the failing step's log tail
    assert len(fake.matching("POST", "/check-runs")) == 1  # created once, then updated
    sent = [len(r.json["output"].get("annotations", [])) for r in fake.matching("PATCH", "/check-runs/")
            if r.json.get("output")]  # fmt: skip
    assert [count for count in sent if count] == [50, FINDINGS - 50]
    assert len(run["annotations"]) == FINDINGS
    assert run["annotations"][0] == {"path": "src/app.py", "start_line": 1, "end_line": 1,
                                     "annotation_level": "failure", "message": "E1 failed"}  # fmt: skip
    assert [a["start_line"] for a in run["annotations"]] == list(range(1, FINDINGS + 1))

    assert fake.token_requests() == 1  # one installation token, reused for every update
    assert len(fake.matching("GET", "/repos/octo/app/installation")) == 1
    assert all(claims["iss"] == str(APP_ID) for claims in fake.state.jwt_claims)  # JWTs verified by the fake
    (token,) = fake.state.issued_tokens
    repo_calls = [r for r in fake.requests if r.path.startswith("/repos/octo/app/") and "installation" not in r.path]
    assert {r.headers["authorization"] for r in repo_calls} == {f"token {token}"}  # the App wins over the token

    final = {s["context"]: s["state"] for s in fake.state.statuses}
    assert final == {"taskmaster/build": "success", "taskmaster/test": "failure", "taskmaster": "failure"}
    (comment,) = fake.comments_on("octo/app", 7)
    assert "E75 failed" in comment["body"]
    assert len(fake.state.issues) == 1


async def test_the_engine_does_not_wait_for_the_forge_and_the_forge_gets_the_final_state(
    harness_factory: Callable[..., Any], github: tuple[str, FakeGitHub]
) -> None:
    url, fake = github
    harness = await harness_factory("steps:\n  one: {run: 'true'}\n  two: {run: 'true', needs: [one]}\n")
    box = SecretBox.from_settings(harness.settings)
    pipeline = await harness.create()
    await on_github(harness, box, pipeline, settings={"forge_api_url": url})
    updates = ForgeUpdates(harness.db, ForgeFactory(harness.settings, Credentials(box)))
    fake.open.clear()  # GitHub answers nothing until the pipeline is over
    try:
        status = await asyncio.wait_for(harness.engine(on_change=updates).run(pipeline.id), 60)
        held = len(fake.requests)
    finally:
        fake.open.set()
    await updates.drain()
    await updates.aclose()

    assert status == "success"
    assert held >= 1  # a report was on its way, unanswered, while the engine finished
    final = {s["context"]: s["state"] for s in fake.state.statuses}
    assert final == {"taskmaster/one": "success", "taskmaster/two": "success", "taskmaster": "success"}
    # Changes made while a report was in flight were folded: fewer rounds of statuses than pipeline changes.
    assert len([s for s in fake.state.statuses if s["context"] == "taskmaster"]) < 6


@pytest.mark.slow  # GitHub's client spaces writes a second apart, as GitHub asks
async def test_the_check_run_id_is_stored_so_another_worker_updates_the_same_check_run(
    harness_factory: Callable[..., Any], github: tuple[str, FakeGitHub], app_key: tuple[str, str]
) -> None:
    fake = github[1]
    harness = await harness_factory(DEFINITION)
    box = SecretBox.from_settings(harness.settings)
    pipeline = await harness.create()
    settings = await as_the_github_app(harness, box, pipeline, github, app_key)

    for _worker in range(2):  # two workers (or one restarted): neither remembers what the other sent
        updates = ForgeUpdates(harness.db, ForgeFactory(settings, Credentials(box)))
        try:
            await updates(pipeline.id)
            await updates.drain()
        finally:
            await updates.aclose()

    (run_id,) = fake.state.check_runs
    async with harness.db.session() as session:
        stored = await session.get(Pipeline, pipeline.id)
    assert stored is not None and stored.check_run_id == str(run_id)
    assert len(fake.matching("POST", "/check-runs")) == 1
    assert [r.path for r in fake.matching("PATCH", "/check-runs/")] == [f"/repos/octo/app/check-runs/{run_id}"]
