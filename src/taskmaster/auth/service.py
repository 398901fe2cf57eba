"""Token use cases: create (shown once), list, revoke, authenticate a bearer credential, local admin token."""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from datetime import timedelta
from pathlib import Path

import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.audit import service as audit
from taskmaster.auth.cache import PrincipalCache
from taskmaster.auth.schemas import Principal, Role, TokenCreated, TokenInfo, TokenSpec
from taskmaster.config import Settings
from taskmaster.config.state import private_dir
from taskmaster.core.clock import as_utc, utcnow
from taskmaster.core.errors import InvalidInput, NotFound, Unauthenticated
from taskmaster.db.models import ApiToken, Project

TOKEN_PREFIX = "tm_"
LOCAL_ADMIN_NAME = "local-admin"
# Writing last_used_at on every request would turn each read into a write; once a minute is enough.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(session: AsyncSession, *, spec: TokenSpec, created_by: str | None = None) -> TokenCreated:
    if spec.project_id is not None and await session.get(Project, spec.project_id) is None:
        raise NotFound(f"project {spec.project_id} does not exist")
    if spec.expires_at is not None and as_utc(spec.expires_at) <= utcnow():
        raise InvalidInput("expires_at is in the past")
    value = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=spec.name,
        token_prefix=value[:10],
        token_hash=hash_token(value),
        role=spec.role.value,
        project_id=spec.project_id,
        created_by=created_by,
        expires_at=spec.expires_at,
    )
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        actor=created_by or "system",
        action="token.create",
        target_type="api_token",
        target_id=row.id,
        project_id=spec.project_id,
        data={"name": spec.name, "role": spec.role.value, "prefix": row.token_prefix},
    )
    return TokenCreated(**TokenInfo.model_validate(row).model_dump(), token=value)


async def list_tokens(session: AsyncSession, *, include_revoked: bool = False) -> list[TokenInfo]:
    query = select(ApiToken).order_by(ApiToken.created_at)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return [TokenInfo.model_validate(row) for row in (await session.scalars(query)).all()]


async def revoke_token(session: AsyncSession, *, token_id: uuid.UUID, actor: str = "system") -> TokenInfo:
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"token {token_id} does not exist")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
        await audit.record(
            session,
            actor=actor,
            action="token.revoke",
            target_type="api_token",
            target_id=row.id,
            project_id=row.project_id,
            data={"name": row.name},
        )
    return TokenInfo.model_validate(row)


async def authenticate(
    session: AsyncSession, settings: Settings, credential: str, *, cache: PrincipalCache | None = None
) -> Principal:
    """Resolve a bearer credential (API token or JWT) to a principal, or raise `Unauthenticated`.

    With `cache`, an API token authenticated in the last few seconds is not looked up again (see `auth.cache`).
    """
    if credential.startswith(TOKEN_PREFIX):
        if cache is None:
            return await _authenticate_token(session, credential)
        token_hash = hash_token(credential)
        principal = cache.get(token_hash)
        if principal is None:
            principal = await _authenticate_token(session, credential, remember=cache)
        return principal
    if credential.count(".") == 2:
        return _authenticate_jwt(settings, credential)
    raise Unauthenticated("bearer credential is neither a Taskmaster API token nor a JWT")


async def _authenticate_token(
    session: AsyncSession, credential: str, *, remember: PrincipalCache | None = None
) -> Principal:
    token_hash = hash_token(credential)
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))
    if row is None:
        raise Unauthenticated("unknown API token")
    now = utcnow()
    if row.revoked_at is not None:
        raise Unauthenticated(f"API token {row.token_prefix}… was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated(f"API token {row.token_prefix}… expired at {row.expires_at.isoformat()}")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
        await session.flush()
    principal = Principal(subject=f"token:{row.name}", role=Role(row.role), project_id=row.project_id, token_id=row.id)
    if remember is not None:
        remember.put(token_hash, principal, row.expires_at)
    return principal


def _authenticate_jwt(settings: Settings, credential: str) -> Principal:
    auth = settings.auth
    key: str | None = auth.jwt_public_key or (
        auth.jwt_secret.get_secret_value() if auth.jwt_secret is not None else None
    )
    if key is None:
        raise Unauthenticated("JWTs are not accepted: no TASKMASTER_JWT_SECRET or public key configured")
    try:
        claims = jwt.decode(
            credential,
            key,
            algorithms=list(auth.jwt_algorithms),
            audience=auth.jwt_audience,
            issuer=auth.jwt_issuer,
            options={"require": ["exp", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"invalid JWT: {exc}") from None
    try:
        role = Role(claims.get("role", Role.viewer.value))
        project = claims.get("project")
        project_id = uuid.UUID(str(project)) if project else None
    except ValueError as exc:
        raise Unauthenticated(f"invalid JWT claims: {exc}") from None
    return Principal(subject=f"jwt:{claims['sub']}", role=role, project_id=project_id, kind="jwt")


async def ensure_local_admin_token(session: AsyncSession, settings: Settings) -> Path:
    """On the embedded default: make sure `<state dir>/admin-token` (mode 0600) holds a live admin token."""
    path = settings.admin_token_file
    if path.exists():
        existing = path.read_text().strip()
        row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(existing)))
        if row is not None and row.revoked_at is None:
            return path
    created = await create_token(
        session, spec=TokenSpec(name=LOCAL_ADMIN_NAME, role=Role.admin), created_by="taskmaster"
    )
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(created.token + "\n")
    os.chmod(path, 0o600)
    return path
