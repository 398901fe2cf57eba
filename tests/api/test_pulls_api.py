"""/api/projects/{id}/pulls and /issues on a live server: the local forge's pull requests opened, read, merged with
git and closed, with roles, problem+json errors and 4xx on bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path

from taskmaster.auth.schemas import Role
from taskmaster.db.session import Database
from taskmaster.forges.local.forge import LocalForge
from tests.api.conftest import Api
from tests.forges.local.conftest import make_working_repo
from tests.support.git import git


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
