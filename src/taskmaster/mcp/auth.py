"""Bearer auth for MCP over HTTP: the same Taskmaster API tokens (or JWTs) and roles as the REST API.

Over stdio there is no caller to check: the process that launched the server is the boundary.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken

from taskmaster.auth.schemas import Principal, Role
from taskmaster.config import Settings
from taskmaster.core.errors import PermissionDenied, Unauthenticated
from taskmaster.core.logging import get_logger

if TYPE_CHECKING:
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
        from taskmaster.auth import service as auth_service

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


class ExplainedUnauthorized:
    """ASGI wrapper of the MCP app: the SDK answers every refused credential with "Authentication required"; this
    says why instead (no bearer token, an unknown token, a revoked or an expired one), in the same 401 format.

    Only refused requests are looked at again, so an accepted one costs nothing more.
    """

    def __init__(self, app: Any, db: Database, settings: Settings) -> None:
        self.app = app
        self.db = db
        self.settings = settings

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = False

        async def explain(message: dict[str, Any]) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 401:
                refused = True
                await self._refuse(scope, send)
            elif not refused:
                await send(message)

        await self.app(scope, receive, explain)

    async def _refuse(self, scope: Any, send: Any) -> None:
        reason = await self.reason(_bearer(scope))
        description = reason.replace("\\", "\\\\").replace('"', "'")
        body = json.dumps({"error": "invalid_token", "error_description": reason}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", f'Bearer error="invalid_token", error_description="{description}"'.encode()),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def reason(self, credential: str | None) -> str:
        """Why `credential` (the bearer value, None when none was sent) is refused."""
        from taskmaster.auth import service as auth_service

        if not credential:
            return "no bearer token: send 'Authorization: Bearer <token>' with a Taskmaster API token or JWT"
        async with self.db.autocommit_session() as session:
            try:
                await auth_service.authenticate(session, self.settings, credential)
            except Unauthenticated as exc:
                return exc.detail
        return "the credential was refused"


def _bearer(scope: Any) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            return credential.strip() if scheme.lower() == "bearer" else None
    return None
