"""API tokens and JWTs: stored hashed, shown once, expiry, revocation, last-used, roles."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from sqlalchemy import select

from taskmaster.auth import service
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.config import Settings
from taskmaster.core.clock import utcnow
from taskmaster.core.errors import InvalidInput, NotFound, Unauthenticated
from taskmaster.db.models import ApiToken
from taskmaster.db.session import Database
from tests.conftest import make_settings


async def test_token_is_stored_only_as_a_hash_and_authenticates(db: Database, settings: Settings) -> None:
    async with db.transaction() as session:
        created = await service.create_token(session, spec=TokenSpec(name="ci", role=Role.developer))
    assert created.token.startswith("tm_")
    assert len(created.token) > 40
    async with db.session() as session:
        row = (await session.scalars(select(ApiToken))).one()
        assert row.token_hash == service.hash_token(created.token) != created.token
        assert created.token not in {row.token_hash, row.token_prefix, row.name}
        principal = await service.authenticate(session, settings, created.token)
        await session.commit()
    assert principal.role is Role.developer
    assert principal.token_id == created.id
    async with db.session() as session:
        row = (await session.scalars(select(ApiToken))).one()
        assert row.last_used_at is not None


async def test_revoked_expired_and_unknown_tokens_are_refused(db: Database, settings: Settings) -> None:
    async with db.transaction() as session:
        revoked = await service.create_token(session, spec=TokenSpec(name="a", role=Role.admin))
        await service.revoke_token(session, token_id=revoked.id)
        soon = await service.create_token(
            session, spec=TokenSpec(name="b", role=Role.viewer, expires_at=utcnow() + timedelta(seconds=1))
        )
    time.sleep(1.1)
    async with db.session() as session:
        with pytest.raises(Unauthenticated, match="revoked"):
            await service.authenticate(session, settings, revoked.token)
        with pytest.raises(Unauthenticated, match="expired"):
            await service.authenticate(session, settings, soon.token)
        with pytest.raises(Unauthenticated, match="unknown"):
            await service.authenticate(session, settings, "tm_" + "x" * 43)
        listed = await service.list_tokens(session)
        assert [t.name for t in listed] == ["b"]
        assert {t.name for t in await service.list_tokens(session, include_revoked=True)} == {"a", "b"}


async def test_creating_a_token_for_a_missing_project_or_in_the_past_fails(db: Database) -> None:
    import uuid

    async with db.transaction() as session:
        with pytest.raises(NotFound):
            await service.create_token(session, spec=TokenSpec(name="x", role=Role.viewer, project_id=uuid.uuid4()))
        with pytest.raises(InvalidInput, match="past"):
            await service.create_token(
                session, spec=TokenSpec(name="x", role=Role.viewer, expires_at=utcnow() - timedelta(days=1))
            )


async def test_jwt_signed_with_the_configured_secret_is_accepted(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, TASKMASTER_JWT_SECRET="s3cret-key-with-enough-length-for-hs256")
    good = jwt.encode(
        {"sub": "alice", "role": "developer", "exp": int(time.time()) + 60},
        "s3cret-key-with-enough-length-for-hs256",
        algorithm="HS256",
    )
    principal = await service.authenticate(None, settings, good)  # type: ignore[arg-type]
    assert principal.subject == "jwt:alice"
    assert principal.role is Role.developer
    assert principal.kind == "jwt"
    forged = jwt.encode({"sub": "mallory", "role": "admin", "exp": int(time.time()) + 60}, "wrong-key-" * 4)
    with pytest.raises(Unauthenticated, match="invalid JWT"):
        await service.authenticate(None, settings, forged)  # type: ignore[arg-type]
    stale = jwt.encode(
        {"sub": "alice", "exp": int(time.time()) - 10},
        "s3cret-key-with-enough-length-for-hs256",
        algorithm="HS256",
    )
    with pytest.raises(Unauthenticated, match="expired"):
        await service.authenticate(None, settings, stale)  # type: ignore[arg-type]


async def test_jwt_refused_when_no_key_is_configured(tmp_path: Path) -> None:
    token = jwt.encode({"sub": "a", "exp": int(time.time()) + 60}, "k" * 32, algorithm="HS256")
    with pytest.raises(Unauthenticated, match="no TASKMASTER_JWT_SECRET"):
        await service.authenticate(None, make_settings(tmp_path), token)  # type: ignore[arg-type]


async def test_local_admin_token_file_is_private_and_reused(db: Database, settings: Settings) -> None:
    async with db.transaction() as session:
        path = await service.ensure_local_admin_token(session, settings)
    assert path.stat().st_mode & 0o777 == 0o600
    first = path.read_text().strip()
    async with db.transaction() as session:
        assert await service.ensure_local_admin_token(session, settings) == path
        principal = await service.authenticate(session, settings, first)
    assert path.read_text().strip() == first
    assert principal.role is Role.admin
    async with db.transaction() as session:
        await service.revoke_token(session, token_id=principal.token_id)  # type: ignore[arg-type]
        await service.ensure_local_admin_token(session, settings)
    assert path.read_text().strip() != first


def test_roles_are_ordered() -> None:
    assert Role.admin.covers(Role.developer)
    assert Role.developer.covers(Role.viewer)
    assert not Role.viewer.covers(Role.developer)
    assert not Role.developer.covers(Role.admin)
