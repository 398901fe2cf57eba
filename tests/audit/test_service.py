"""Changes to tokens and projects leave audit events, with the actor and the request that made them."""

from __future__ import annotations

import structlog

from taskmaster.audit.service import list_events
from taskmaster.auth import service as auth
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.db.session import Database
from taskmaster.projects import service as projects
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets.box import SecretBox, new_key


async def test_token_and_project_changes_are_audited_in_order(db: Database) -> None:
    box = SecretBox([new_key()])
    with structlog.contextvars.bound_contextvars(request_id="req-audit"):
        async with db.transaction() as session:
            project = await projects.create_project(
                session,
                spec=ProjectCreate(name="p", repository="/p", webhook_secret="s3cr3t-value"),  # type: ignore[arg-type]
                box=box,
                actor="token:alice",
            )
            token = await auth.create_token(
                session, spec=TokenSpec(name="ci", role=Role.viewer, project_id=project.id), created_by="token:alice"
            )
            await auth.revoke_token(session, token_id=token.id, actor="token:bob")
        async with db.transaction() as session:
            await projects.delete_project(session, "p", actor="token:bob")
    async with db.session() as session:
        events = list(reversed(await list_events(session)))
    assert [(e.action, e.actor) for e in events] == [
        ("project.create", "token:alice"),
        ("token.create", "token:alice"),
        ("token.revoke", "token:bob"),
        ("project.delete", "token:bob"),
    ]
    assert {e.request_id for e in events} == {"req-audit"}
    assert events[1].data == {"name": "ci", "role": "viewer", "prefix": token.token_prefix}
    assert all(token.token not in str(e.data) and "s3cr3t-value" not in str(e.data) for e in events)


async def test_a_failed_transaction_leaves_no_audit_event(db: Database) -> None:
    box = SecretBox([new_key()])
    try:
        async with db.transaction() as session:
            await projects.create_project(session, spec=ProjectCreate(name="q", repository="/q"), box=box)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    async with db.session() as session:
        assert await list_events(session) == []
