"""Comment commands ask the project's forge whether the author may write, once per five minutes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskmaster.config import Settings
from taskmaster.db.models import Project
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.forges import ForgeFactory
from taskmaster.secrets.box import SecretBox, new_key
from taskmaster.worker.webhooks import ForgePermissions
from tests.forges.fakes.github import PERSONAL_TOKEN, FakeGitHub, serve_github


@pytest.fixture
def github() -> Iterator[tuple[str, FakeGitHub]]:
    with serve_github() as server:
        yield server


async def test_write_access_is_asked_of_github_with_the_project_token_and_cached(
    github: tuple[str, FakeGitHub],
) -> None:
    url, fake = github
    fake.state.permissions[("octo/app", "writer")] = "write"
    fake.state.permissions[("octo/app", "reader")] = "read"
    box = SecretBox([new_key()])
    token = box.encrypt(PERSONAL_TOKEN)
    project = Project(name="app", repository="https://github.com/octo/app", forge="github", owner="octo",
                      repo_name="app", forge_token=token, settings={"forge_api_url": url})  # fmt: skip
    permissions = ForgePermissions(ForgeFactory(Settings(), Credentials(box)))
    assert await permissions(project, "writer") is True
    assert await permissions(project, "reader") is False
    assert await permissions(project, "Writer") is True  # cached, whatever the case
    asked = [c for c in fake.requests if "/collaborators/" in c.path]
    assert [c.path for c in asked] == ["/repos/octo/app/collaborators/writer/permission",
                                       "/repos/octo/app/collaborators/reader/permission"]  # fmt: skip
    assert all(c.headers.get("authorization", "").endswith(PERSONAL_TOKEN) for c in asked)


async def test_without_a_forge_token_nobody_may_command() -> None:
    box = SecretBox([new_key()])
    project = Project(name="app", repository="https://github.com/octo/app", forge="github", owner="octo",
                      repo_name="app", settings={})  # fmt: skip
    assert (
        await ForgePermissions(ForgeFactory(Settings(), Credentials(box)))(project, "anyone") is None
    )  # cannot ask: refused, saying why
