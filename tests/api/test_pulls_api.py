"""/api/projects/{id}/pulls and /issues on a live server: the local forge's pull requests opened, read, marked ready,
merged with git and closed, with roles, problem+json errors and 4xx on bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from taskmaster.app import create_app
from taskmaster.auth.schemas import Role
from taskmaster.config import Settings
from taskmaster.db.session import Database
from taskmaster.forges.local.forge import LocalForge
from tests.api.conftest import Api
from tests.forges.local.conftest import make_working_repo
from tests.support import live_server
from tests.support.git import commit, git

T = TypeVar("T")


def test_pull_requests_over_rest_with_roles_and_problem_answers(api: Api, tmp_path: Path) -> None:
    repo = make_working_repo(tmp_path / "repo")
    with api.client(Role.admin) as admin, api.client(Role.developer) as dev, api.client(Role.viewer) as viewer:
        project = admin.post("/api/projects", json={"name": "app", "repository": str(repo), "forge": "local"}).json()
        pulls = f"/api/projects/{project['id']}/pulls"

        assert viewer.post(pulls, json={"head": "feature", "title": "t"}).status_code == 403
        bad = dev.post(pulls, json={"head": "feature", "title": "", "extra": 1})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
        unknown = dev.post(pulls, json={"head": "nope", "title": "t"})
        assert unknown.status_code == 404 and "branch 'nope' does not exist" in unknown.json()["detail"]
        created = dev.post(pulls, json={"head": "feature", "title": "Add feature", "body": "Why"})
        assert created.status_code == 201, created.text
        assert {k: created.json()[k] for k in ("number", "state", "head_ref", "base_ref", "author", "forge")} == {
            "number": 1, "state": "open", "head_ref": "feature", "base_ref": "main", "author": "token:developer",
            "forge": "local",
        }  # fmt: skip
        assert dev.post(pulls, json={"head": "feature", "title": "again"}).status_code == 409

        assert [p["number"] for p in viewer.get(pulls).json()] == [1]
        assert viewer.get(pulls, params={"state": "merged"}).json() == []
        assert viewer.get(pulls, params={"state": "weird"}).status_code == 422
        detail = viewer.get(f"{pulls}/1").json()
        assert (detail["title"], detail["body"], detail["statuses"], detail["pipelines"]) == (
            "Add feature",
            "Why",
            [],
            [],
        )
        assert viewer.get(f"{pulls}/99").status_code == 404
        assert viewer.get(f"{pulls}/0").status_code == 422
        assert viewer.post(f"{pulls}/1/merge").status_code == 403

        stale = dev.post(f"{pulls}/1/merge", json={"sha": "0" * 40})
        assert stale.status_code == 409 and "the head moved" in stale.json()["detail"]
        merged = dev.post(f"{pulls}/1/merge", json={"squash": False})
        assert merged.status_code == 200, merged.text
        assert merged.json()["merge_commit_sha"] == git(repo, "rev-parse", "main")
        assert dev.post(f"{pulls}/1/merge").status_code == 409
        assert dev.post(f"{pulls}/1/close").status_code == 409

        other = admin.post("/api/projects", json={"name": "gh", "repository": "acme/api", "forge": "github"}).json()
        refused = dev.post(f"/api/projects/{other['id']}/pulls", json={"head": "x", "title": "t"})
        assert refused.status_code == 422 and "is on github" in refused.json()["detail"]
        assert viewer.get(f"/api/projects/{other['id']}/pulls").json() == []


def test_issues_of_the_local_forge_are_listed_and_shown(api: Api, tmp_path: Path) -> None:
    repo = make_working_repo(tmp_path / "repo")
    with api.client(Role.admin) as admin, api.client(Role.viewer) as viewer:
        project = admin.post("/api/projects", json={"name": "app", "repository": str(repo), "forge": "local"}).json()

        async def open_issue() -> None:
            db = Database.from_settings(api.settings)
            try:
                import uuid

                forge = LocalForge(db, uuid.UUID(project["id"]))
                await forge.create_issue(str(repo), title="Manual review: test failed", body="log", labels=["ci"])
            finally:
                await db.dispose()

        asyncio.run(open_issue())
        issues = f"/api/projects/{project['id']}/issues"
        (listed,) = viewer.get(issues).json()
        assert (listed["number"], listed["title"], listed["labels"], listed["state"]) == (
            1, "Manual review: test failed", ["ci"], "open"
        )  # fmt: skip
        assert viewer.get(f"{issues}/1").json()["body"] == "log"
        assert viewer.get(f"{issues}/2").status_code == 404
        assert viewer.get(issues, params={"state": "merged"}).status_code == 422


@pytest.mark.slow  # the in-process worker runs the pipeline the ready event requests
async def test_a_draft_marked_ready_over_rest_is_validated_by_the_worker_and_bad_cases_get_problem_answers(
    settings: Settings, migrated: dict[Role, str], tmp_path: Path
) -> None:
    repo = make_working_repo(tmp_path / "repo")
    git(repo, "checkout", "-q", "feature")
    head = commit(repo, ".taskmaster.yml", "steps:\n  hello: {run: 'test -f feature.txt'}\n")
    git(repo, "checkout", "-q", "main")
    api = Api(url="", settings=settings, tokens=migrated)
    with live_server(create_app(settings, run_worker=True)) as url:
        api.url = url
        with api.client(Role.admin) as admin, api.client(Role.developer) as dev, api.client(Role.viewer) as viewer:
            project = admin.post("/api/projects", json={"name": "app", "repository": str(repo), "forge": "local"})
            pulls = f"/api/projects/{project.json()['id']}/pulls"
            opened = dev.post(pulls, json={"head": "feature", "title": "Sketch", "draft": True})
            assert opened.status_code == 201 and opened.json()["draft"] is True, opened.text

            async def processed(count: int) -> bool:
                deliveries = viewer.get("/api/webhooks/deliveries").json()["items"]
                return len(deliveries) == count and all(d["status"] == "processed" for d in deliveries)

            await _wait_for(lambda: processed(1))
            assert viewer.get(f"{pulls}/1").json()["pipelines"] == []  # a draft is not validated
            assert dev.post(f"{pulls}/1/merge").status_code == 409
            assert viewer.post(f"{pulls}/1/ready").status_code == 403

            ready = dev.post(f"{pulls}/1/ready")
            assert ready.status_code == 200, ready.text
            assert {k: ready.json()[k] for k in ("number", "draft", "state", "head_sha")} == {
                "number": 1, "draft": False, "state": "open", "head_sha": head
            }  # fmt: skip

            async def validated() -> list[dict[str, Any]] | None:
                pipelines: list[dict[str, Any]] = viewer.get(f"{pulls}/1").json()["pipelines"]
                return pipelines if pipelines and pipelines[0]["status"] == "success" else None

            assert [(p["status"], p["commit_sha"]) for p in await _wait_for(validated)] == [("success", head)]
            again = dev.post(f"{pulls}/1/ready")
            assert again.status_code == 409 and again.headers["content-type"].startswith("application/problem+json")
            assert again.json()["detail"] == "pull request #1 is not a draft: it is ready for review already"
            assert dev.post(f"{pulls}/9/ready").status_code == 404
            assert dev.post(f"{pulls}/0/ready").status_code == 422
            assert dev.post(f"{pulls}/1/merge").status_code == 200
            merged = dev.post(f"{pulls}/1/ready")
            assert merged.status_code == 409 and "#1 is merged" in merged.json()["detail"]
            other = admin.post("/api/projects", json={"name": "gh", "repository": "acme/api", "forge": "github"})
            refused = dev.post(f"/api/projects/{other.json()['id']}/pulls/1/ready")
            assert refused.status_code == 422 and "is on github" in refused.json()["detail"]


async def _wait_for(check: Callable[[], Awaitable[T]], timeout: float = 90) -> T:
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.2)
    return found
