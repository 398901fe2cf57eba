"""Projects: create with encrypted secrets, set a forge token later, look up by name or id, unique names, delete."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from taskmaster.core.errors import Conflict, InvalidInput, NotFound
from taskmaster.db.models import AuditEvent
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


async def test_a_forge_token_is_set_then_replaced_encrypted_with_an_audit_row_each_time(db: Database) -> None:
    spec = ProjectCreate(name="later", repository="https://github.com/o/later", forge="github")
    async with db.transaction() as session:
        await service.create_project(session, spec=spec, box=BOX)
    for token in ("ghp_first_token", "ghp_second_token"):
        async with db.transaction() as session:
            await service.set_forge_token(session, "later", token=token, box=BOX, actor="cli")
        async with db.session() as session:
            project = await service.get_project(session, "later")
            assert project.forge_token is not None and token not in project.forge_token
            assert BOX.decrypt(project.forge_token) == token and service.to_out(project).has_forge_token
    async with db.transaction() as session:
        with pytest.raises(InvalidInput, match="must not be empty"):
            await service.set_forge_token(session, "later", token=" ", box=BOX)
        with pytest.raises(NotFound):
            await service.set_forge_token(session, "nowhere", token="ghp_x", box=BOX)
    async with db.session() as session:
        assert BOX.decrypt((await service.get_project(session, "later")).forge_token) == "ghp_second_token"
        events = await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "project.forge_token.set").order_by(AuditEvent.created_at)
        )
        assert [(e.actor, e.target_id, e.data) for e in events] == [
            ("cli", str(project.id), {"had_previous": False}),
            ("cli", str(project.id), {"had_previous": True}),
        ]
