"""Which client serves a project (`projects.forges`): the GitHub App on its own server, else the project's token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from taskmaster.config import Settings
from taskmaster.config.settings import GitHubSettings
from taskmaster.db.models import Project
from taskmaster.forges.github.client import GitHubForge
from taskmaster.forges.gitlab.client import GitLabForge
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.forges import ForgeFactory
from taskmaster.secrets.box import SecretBox, new_key
from taskmaster.worker.webhooks import ForgePermissions
from tests.forges.fakes.github import PERSONAL_TOKEN, FakeGitHub, serve_github

APP_ID = 4242


@pytest.fixture
def github() -> Iterator[tuple[str, FakeGitHub]]:
    with serve_github() as server:
        yield server


def app_settings(private_pem: str, api_url: str = "https://api.github.com") -> Settings:
    return Settings(github=GitHubSettings(api_url=api_url, app_id=APP_ID, private_key=SecretStr(private_pem)))


def forges(settings: Settings, box: SecretBox) -> ForgeFactory:
    return ForgeFactory(settings, Credentials(box))


def project(forge: str = "github", *, token: bytes | None = None, api_url: str | None = None) -> Project:
    return Project(
        name="app",
        repository="https://example.test/octo/app",
        forge=forge,
        owner="octo",
        repo_name="app",
        forge_token=token,
        settings={"forge_api_url": api_url} if api_url else {},
    )


async def test_a_github_project_uses_the_app_when_one_is_configured_even_with_a_token(
    app_key: tuple[str, str],
) -> None:
    box = SecretBox([new_key()])
    with_token = project(token=box.encrypt(PERSONAL_TOKEN))
    settings = app_settings(app_key[0])
    assert forges(settings, box).uses_app(with_token)
    forge = forges(settings, box).for_project(with_token)
    assert isinstance(forge, GitHubForge) and f"app_id={APP_ID}" in repr(forge)
    await forge.aclose()


async def test_without_an_app_the_token_is_used_and_without_either_there_is_no_client() -> None:
    box = SecretBox([new_key()])
    with_token = project(token=box.encrypt(PERSONAL_TOKEN))
    assert not forges(Settings(), box).uses_app(with_token)
    forge = forges(Settings(), box).for_project(with_token)
    assert isinstance(forge, GitHubForge) and "token=[redacted]" in repr(forge)
    await forge.aclose()
    assert forges(Settings(), box).for_project(project()) is None
    local = project("local", token=box.encrypt(PERSONAL_TOKEN))
    assert forges(Settings(), box).for_project(local) is None


async def test_a_project_on_another_github_server_keeps_its_token(app_key: tuple[str, str]) -> None:
    box = SecretBox([new_key()])
    elsewhere = project(token=box.encrypt(PERSONAL_TOKEN), api_url="https://ghe.example.test/api/v3/")
    settings = app_settings(app_key[0])
    assert not forges(settings, box).uses_app(elsewhere)
    forge = forges(settings, box).for_project(elsewhere)
    assert isinstance(forge, GitHubForge) and "ghe.example.test/api/v3'" in repr(forge) and "token" in repr(forge)
    await forge.aclose()
    assert forges(settings, box).for_project(project(api_url="https://ghe.example.test/api/v3")) is None


async def test_gitlab_projects_ignore_the_github_app(app_key: tuple[str, str]) -> None:
    box = SecretBox([new_key()])
    gitlab = project("gitlab", token=box.encrypt("glpat-0123456789abcdefghij"))
    settings = app_settings(app_key[0])
    assert not forges(settings, box).uses_app(gitlab)
    forge = forges(settings, box).for_project(gitlab)
    assert isinstance(forge, GitLabForge)
    await forge.aclose()


async def test_write_access_is_asked_as_the_app_for_a_project_without_a_token(
    github: tuple[str, FakeGitHub], app_key: tuple[str, str]
) -> None:
    url, fake = github
    private, public = app_key
    fake.app_id, fake.app_public_key, fake.installations = APP_ID, public, {"octo/app": 77}
    fake.state.permissions[("octo/app", "writer")] = "write"
    permissions = ForgePermissions(
        ForgeFactory(app_settings(private, api_url=url), Credentials(SecretBox([new_key()])))
    )
    assert await permissions(project(), "writer") is True
    assert await permissions(project(), "stranger") is False
    asked = fake.matching("GET", "/collaborators/")
    assert len(asked) == 2
    issued = {f"token {token}" for token in fake.state.issued_tokens}
    assert {r.headers["authorization"] for r in asked} <= issued  # installation tokens the fake issued
