"""Dashboard sessions: opened with an API token, kept server-side, checked against that token on every request.

The browser holds only a random secret in an HttpOnly, SameSite=Strict cookie; the row stores its SHA-256, the
token it acts as, and the CSRF token the session's forms must send back.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.auth.schemas import Principal, Role
from taskmaster.auth.service import hash_token
from taskmaster.core.clock import utcnow
from taskmaster.core.errors import Unauthenticated
from taskmaster.db.models import ApiToken, WebSession

SESSION_LIFETIME = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class OpenedSession:
    """What the browser gets once: the cookie's secret, and the CSRF token for its forms."""

    secret: str
    csrf_token: str
    max_age_seconds: int


@dataclass(frozen=True, slots=True)
class SignedIn:
    principal: Principal
    csrf_token: str


async def open_session(session: AsyncSession, principal: Principal) -> OpenedSession:
    """A new session acting as `principal`'s API token (JWTs cannot open one: they carry no row to re-check)."""
    if principal.token_id is None:
        raise Unauthenticated("only an API token (tm_…) can sign in to the dashboard")
    secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    # Sign-ins are rare: clearing expired rows here keeps the table small without a reaper.
    await session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    session.add(
        WebSession(
            session_hash=hash_token(secret),
            token_id=principal.token_id,
            csrf_token=csrf,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    await session.flush()
    return OpenedSession(secret, csrf, int(SESSION_LIFETIME.total_seconds()))


async def resume_session(session: AsyncSession, secret: str) -> SignedIn:
    """The principal of a cookie's session, or `Unauthenticated` saying why it no longer holds."""
    row = (
        await session.execute(
            select(WebSession, ApiToken)
            .join(ApiToken, ApiToken.id == WebSession.token_id)
            .where(WebSession.session_hash == hash_token(secret))
        )
    ).first()
    if row is None:
        raise Unauthenticated("the dashboard session is unknown or was signed out")
    web, token = row
    now = utcnow()
    if web.expires_at <= now:
        raise Unauthenticated("the dashboard session expired: sign in again")
    if token.revoked_at is not None:
        raise Unauthenticated(f"API token {token.token_prefix}… was revoked")
    if token.expires_at is not None and token.expires_at <= now:
        raise Unauthenticated(f"API token {token.token_prefix}… expired")
    principal = Principal(
        subject=f"token:{token.name}", role=Role(token.role), project_id=token.project_id, token_id=token.id
    )
    return SignedIn(principal, web.csrf_token)


async def close_session(session: AsyncSession, secret: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.session_hash == hash_token(secret)))
