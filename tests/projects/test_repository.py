"""Repository addresses: owner and name read from URLs, scp-like addresses, bare names and paths (a GitLab owner is
the whole namespace), GitHub addresses with other than two segments refused, and the forge path of a project."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from taskmaster.db.models import Project
from taskmaster.db.session import Database
from taskmaster.projects import service
from taskmaster.projects.repository import forge_path, split_repository
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets.box import SecretBox, new_key

BOX = SecretBox([new_key()])


@pytest.mark.parametrize(
    ("repository", "forge", "expected"),
    [
        ("https://github.com/octo/repo", "github", ("octo", "repo")),
        ("https://github.com/octo/repo.git/", "github", ("octo", "repo")),
        ("https://user@github.example.com:8443/octo/repo.git", "github", ("octo", "repo")),
        ("git@github.com:Codertocat/Hello-World.git", "github", ("Codertocat", "Hello-World")),
        ("ssh://git@github.com/octo/repo.git", "github", ("octo", "repo")),
        ("octo/repo", "github", ("octo", "repo")),
        ("https://gitlab.example.com/group/proj.git", "gitlab", ("group", "proj")),
        ("https://gitlab.com/acme/platform/api.git", "gitlab", ("acme/platform", "api")),
        ("https://gitlab.com/acme/platform/backend/api", "gitlab", ("acme/platform/backend", "api")),
        ("git@gitlab.com:acme/platform/api.git", "gitlab", ("acme/platform", "api")),
        ("https://gitlab.example.com:8443/acme/platform/api.git", "gitlab", ("acme/platform", "api")),
        ("ssh://git@gitlab.example.com:2222/acme/platform/api.git", "gitlab", ("acme/platform", "api")),
        ("acme/platform/api", "gitlab", ("acme/platform", "api")),
        # A path on this machine says nothing of its forge's namespace: its last two directories, as ever.
        ("/srv/git/acme/api.git", "gitlab", ("acme", "api")),
        ("file:///srv/git/acme/api.git", "gitlab", ("acme", "api")),
        ("https://gitlab.com/api", "gitlab", (None, None)),
    ],
)
def test_owner_and_name_are_read_from_the_repository(
    repository: str, forge: str, expected: tuple[str | None, str | None]
) -> None:
    assert split_repository(repository, forge) == expected


@pytest.mark.parametrize(
    ("repository", "forge", "named"),
    [
        ("https://github.com/octo/repo/tree/main", "github", "names octo/repo/tree/main"),
        ("git@github.com:acme/platform/api.git", "github", "names acme/platform/api"),
        ("acme/platform/api", "github", "names acme/platform/api"),
        ("https://github.com/octo", "github", "names octo"),
        ("https://gitlab.com/api.git", "gitlab", "names api"),
        ("https://gitlab.com/" + "g" * 201 + "/api.git", "gitlab", "at most 200 characters"),
    ],
)
def test_a_repository_its_forge_cannot_have_is_refused_naming_it(repository: str, forge: str, named: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ProjectCreate(name="p", repository=repository, forge=forge)  # type: ignore[arg-type]
    (error,) = raised.value.errors()
    assert error["type"] == "forge_repository"
    assert error["msg"].startswith("repository: ") and repository in error["msg"] and named in error["msg"]


def test_paths_and_local_projects_are_not_held_to_a_forges_shape() -> None:
    assert ProjectCreate(name="p", repository="/srv/a/b/c/d", forge="github").repository == "/srv/a/b/c/d"
    assert ProjectCreate(name="p", repository="https://example.com/a.git", forge="local").forge == "local"


async def test_a_gitlab_project_in_a_subgroup_is_stored_with_its_namespace_and_addressed_by_its_whole_path(
    db: Database,
) -> None:
    spec = ProjectCreate(name="api", repository="https://gitlab.com/acme/platform/api.git", forge="gitlab")
    async with db.transaction() as session:
        created = await service.create_project(session, spec=spec, box=BOX)
    assert (created.owner, created.repo_name) == ("acme/platform", "api")
    assert forge_path(created) == "acme/platform/api"
    assert forge_path(Project(name="l", repository="/srv/l", forge="local")) is None
