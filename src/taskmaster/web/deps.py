"""Who is looking at a page, and whether a form may change something.

A page answers a browser signed in with the session cookie, or a script sending `Authorization: Bearer <token>`
(the same roles as the API). A form that changes anything must carry the session's CSRF token; a request
authenticated by its header carries no cookie and needs none (a browser never adds that header on its own).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Protocol
from urllib.parse import quote

from fastapi import Depends, Request

from taskmaster.auth import service as auth_service
from taskmaster.auth import web_sessions
from taskmaster.auth.cache import PrincipalCache
from taskmaster.auth.schemas import Principal, Role
from taskmaster.config import Settings
from taskmaster.core.errors import NotFound, PermissionDenied, TaskmasterError, Unauthenticated
from taskmaster.db.session import Database
from taskmaster.runtime import Runtime

SESSION_COOKIE = "tm_session"
LOGIN_CSRF_COOKIE = "tm_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class WebServices(Protocol):
    """What pages use of the app's services (built once by create_app)."""

    settings: Settings
    db: Database
    runtime: Runtime
    principals: PrincipalCache | None
    wake_worker: Callable[[], None] | None


class SignInRequired(TaskmasterError):
    """No credential came with a page request: the browser is sent to the sign-in form."""

    def __init__(self, next_path: str, why: str | None = None) -> None:
        super().__init__(why or "sign in to see this page")
        self.next_path = next_path
        self.why = why


def services(request: Request) -> WebServices:
    found: WebServices = request.app.state.services
    return found


@dataclass(frozen=True, slots=True)
class Viewer:
    """The principal behind a page, and the CSRF token its forms carry (None: authenticated by header)."""

    principal: Principal
    csrf_token: str | None

    @property
    def can_write(self) -> bool:
        return self.principal.role.covers(Role.developer)

    @property
    def is_admin(self) -> bool:
        return self.principal.role.covers(Role.admin)

    def sees(self, project_id: object) -> bool:
        """A credential limited to a project sees that project's records only."""
        return self.principal.project_id is None or self.principal.project_id == project_id

    def check_visible(self, project_id: object, missing: str) -> None:
        """`NotFound(missing)` for a record outside a limited credential's project, worded as for a missing one."""
        if not self.sees(project_id):
            raise NotFound(missing)


async def _viewer(request: Request) -> Viewer:
    app = services(request)
    header = request.headers.get("authorization", "")
    async with app.db.autocommit_session() as session:
        if header:
            scheme, _, credential = header.partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                raise Unauthenticated("send 'Authorization: Bearer <token>'")
            principal = await auth_service.authenticate(session, app.settings, credential.strip(), cache=app.principals)
            return Viewer(principal, None)
        secret = request.cookies.get(SESSION_COOKIE)
        if not secret:
            raise SignInRequired(_here(request))
        try:
            signed_in = await web_sessions.resume_session(session, secret)
        except Unauthenticated as exc:
            raise SignInRequired(_here(request), exc.detail) from None
        return Viewer(signed_in.principal, signed_in.csrf_token)


def _here(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return quote(request.url.path + query, safe="/?=&")


def require(role: Role) -> Callable[..., Coroutine[Any, Any, Viewer]]:
    """A page dependency admitting `role` or above; for POSTs it also checks the CSRF token of cookie sessions."""

    async def check(request: Request) -> Viewer:
        viewer = await _viewer(request)
        if not viewer.principal.role.covers(role):
            raise PermissionDenied(f"this needs the {role.value} role; you have {viewer.principal.role.value}")
        if request.method not in ("GET", "HEAD") and viewer.csrf_token is not None:
            await check_csrf(request, viewer.csrf_token)
        return viewer

    return check


async def check_csrf(request: Request, expected: str) -> None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not secrets.compare_digest(sent, expected):
        raise PermissionDenied("the form's CSRF token is missing or wrong: reload the page and try again")


ViewerDep = Annotated[Viewer, Depends(require(Role.viewer))]
DeveloperDep = Annotated[Viewer, Depends(require(Role.developer))]
AdminDep = Annotated[Viewer, Depends(require(Role.admin))]
