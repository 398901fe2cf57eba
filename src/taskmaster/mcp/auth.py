"""Bearer auth for MCP over HTTP: the same Taskmaster API tokens (or JWTs) and roles as the REST API.

Over stdio there is no caller to check: the process that launched the server is the boundary.
"""

from __future__ import annotations

import uuid

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken

from taskmaster.auth import service as auth_service
from taskmaster.auth.schemas import Principal, Role
from taskmaster.config import Settings
from taskmaster.core.errors import PermissionDenied, Unauthenticated
from taskmaster.core.logging import get_logger
from taskmaster.db.session import Database

log = get_logger(__name__)


class PrincipalToken(AccessToken):
    """The SDK's access token, carrying the Taskmaster principal it was resolved to."""

    principal: Principal


class ApiTokenVerifier:
    """The SDK's `TokenVerifier`: resolves a bearer credential on every HTTP request, as `api/deps.authorize` does."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def verify_token(self, token: str) -> AccessToken | None:
        """The caller's principal, or None (the SDK then answers 401) for an unknown, revoked or expired one."""
        # Autocommit: the lookup (and the rare last-used update) need no transaction of their own.
        async with self.db.autocommit_session() as session:
            try:
                principal = await auth_service.authenticate(session, self.settings, token)
            except Unauthenticated as exc:
                log.info("mcp credential refused", reason=exc.detail)
                return None
        return PrincipalToken(
            token=token,
            client_id=principal.subject,
            subject=principal.subject,
            scopes=[principal.role.value],
            principal=principal,
        )


def current_caller() -> Principal | None:
    """Who is calling: the HTTP request's principal, or None over stdio."""
    token = get_access_token()
    return token.principal if isinstance(token, PrincipalToken) else None


def require(role: Role) -> Principal | None:
    """The caller, if it holds at least `role`; raises `PermissionDenied` otherwise."""
    caller = current_caller()
    if caller is not None and not caller.role.covers(role):
        raise PermissionDenied(f"this needs the {role.value} role; the credential has {caller.role.value}")
    return caller


def check_project(caller: Principal | None, project_id: uuid.UUID) -> None:
    """Refuse a credential limited to another project."""
    if caller is not None and caller.project_id is not None and caller.project_id != project_id:
        raise PermissionDenied(f"the credential is limited to project {caller.project_id}")
