"""Projects: create with encrypted secrets, look up by name or id, unique names, delete."""

from __future__ import annotations

import pytest

from taskmaster.core.errors import Conflict, NotFound
from taskmaster.db.session import Database
from taskmaster.projects import service
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets.box import SecretBox, new_key

BOX = SecretBox([new_key()])


async def test_create_find_and_delete(db: Database) -> None:
    spec = ProjectCreate(name="hello", repository="git@github.com:Codertocat/Hello-World.git", forge="github")
    async with db.transaction() as session:
        created = await service.create_project(session, spec=spec, box=BOX)
    assert (created.owner, created.repo_name) == ("Codertocat", "Hello-World")
    async with db.transaction() as session:
        by_name = await service.get_project(session, "hello")
        by_id = await service.get_project(session, str(created.id))
        assert by_name.id == by_id.id == created.id
        out = service.to_out(by_name)
        assert not out.has_webhook_secret
        assert out.default_branch == "main"
        with pytest.raises(Conflict, match="already exists"):
            await service.create_project(session, spec=spec, box=BOX)
    async with db.transaction() as session:
        await service.delete_project(session, "hello")
    async with db.session() as session:
        with pytest.raises(NotFound):
            await service.get_project(session, "hello")


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        ("https://github.com/octo/repo", ("octo", "repo")),
        ("https://gitlab.example.com/group/proj.git", ("group", "proj")),
        ("git@gitlab.com:group/proj.git", ("group", "proj")),
        ("octo/repo", ("octo", "repo")),
    ],
)
def test_owner_and_name_are_read_from_the_repository(repository: str, expected: tuple[str, str]) -> None:
    assert service.split_repository(repository) == expected
