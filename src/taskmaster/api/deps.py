"""Dependencies shared by routes: the services container, a database session, and authorization.

Every `/api` route declares `authorize(Role.X)`; a test walks the route table to keep it that way. A credential
limited to one project reaches routes whose path names that project (`{project_id}`), and the routes declared with
`ScopedViewer`/`ScopedDeveloper`/`ScopedAdmin`, which confine it to its project themselves (`project_filter`,
`hide_outside`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.api.middleware import AUTHENTICATED
from taskmaster.auth import service as auth_service
from taskmaster.auth.cache import PrincipalCache
from taskmaster.auth.schemas import Principal, Role
from taskmaster.config import Settings
from taskmaster.core.errors import NotFound, PermissionDenied, Unauthenticated
from taskmaster.db.models import Project
from taskmaster.db.session import Database
from taskmaster.projects.service import as_project_id, get_project
from taskmaster.runtime import Runtime
from taskmaster.secrets import SecretBox
from taskmaster.webhooks.intake import WebhookIntake as WebhookIntake  # re-exported: create_app builds it

# Numbers a client sends are bounded before they reach SQL: beyond the column's range PostgreSQL (and SQLite past
# 64 bits) fails the statement, which is the caller's mistake and must read as one.
MAX_PAGE_OFFSET = 2**31 - 1
PageOffset = Annotated[int, Query(ge=0, le=MAX_PAGE_OFFSET, description="How many matching items to skip.")]


@dataclass
class Services:
    """Everything a request may use, built once by `create_app` and kept on `app.state.services`."""

    settings: Settings
    db: Database
    box: SecretBox
    runtime: Runtime
    """The process's shared parts (mirror cache, credentials, forge and LLM factories); `db` and `box` are its."""
    webhooks: WebhookIntake | None = None
    principals: PrincipalCache | None = None
    wake_worker: Callable[[], None] | None = None
    """Set when the worker runs in this process: a new delivery wakes it instead of waiting for its next poll."""


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    """A session per request; the route commits what it changes."""
    async with services.db.session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_read_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    """An autocommit session per request, for reads: no BEGIN/ROLLBACK round trips.

    Authorization uses it too, and FastAPI hands the same one to a read route, so a read request checks out a
    single connection.
    """
    async with services.db.autocommit_session() as session:
        yield session


ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]

_bearer = HTTPBearer(auto_error=False, description="An API token (tm_…) or a JWT")


def authorize(role: Role, *, route_confines: bool = False) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that admits callers holding at least `role` (on the route's project, if it has one).

    A credential limited to a project passes only when the route's `{project_id}` names that project; with
    `route_confines` it also passes on a route without one, which must then keep it to its project itself.
    """

    async def check(
        request: Request,
        services: ServicesDep,
        session: ReadSessionDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        # A request with a body was authenticated before it was read (`RequestGuardMiddleware`).
        principal: Principal | None = getattr(request.state, AUTHENTICATED, None)
        if principal is None:
            if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
                raise Unauthenticated("missing credentials: send 'Authorization: Bearer <token>'")
            # Autocommit: the lookup (and the rare last-used update) need no transaction of their own.
            principal = await auth_service.authenticate(
                session, services.settings, credentials.credentials, cache=services.principals
            )
        if not principal.role.covers(role):
            raise PermissionDenied(f"this needs the {role.value} role; the credential has {principal.role.value}")
        project = request.path_params.get("project_id")
        # A route that confines the credential itself still has its `{project_id}` checked, should it have one.
        confined_by_route = route_confines and project is None
        if principal.project_id is not None and not confined_by_route:
            await require_own_project(session, principal, project)
        request.state.principal = principal
        return principal

    check.required_role = role  # type: ignore[attr-defined]
    check.route_confines = route_confines  # type: ignore[attr-defined]
    return check


async def project_filter(session: AsyncSession, principal: Principal, ref: str | None) -> uuid.UUID | None:
    """The project a listing or a figure is restricted to: the one `ref` names (an id or a name), if any.

    A credential limited to a project always gets its own, and `PermissionDenied` when `ref` names another (or
    none that exists: the answer does not tell which).
    """
    if principal.project_id is None:
        return (await get_project(session, ref)).id if ref else None
    if ref is not None:
        await require_own_project(session, principal, ref)
    return principal.project_id


async def require_own_project(session: AsyncSession, principal: Principal, ref: str | None) -> None:
    """`PermissionDenied` when the credential is limited to a project other than the one `ref` names."""
    if principal.project_id is not None and not await _is_project(session, principal.project_id, ref):
        raise _limited(principal.project_id)


def hide_outside(principal: Principal, project_id: uuid.UUID | None, missing: str) -> None:
    """`NotFound(missing)` when a record of `project_id` lies outside the credential's project.

    `missing` is the text the route gives for a record that does not exist, so the two answers are the same and
    a limited credential cannot learn what other projects hold.
    """
    if principal.project_id is not None and project_id != principal.project_id:
        raise NotFound(missing)


def _limited(project_id: uuid.UUID) -> PermissionDenied:
    return PermissionDenied(f"the credential is limited to project {project_id}")


async def _is_project(session: AsyncSession, project_id: uuid.UUID, ref: str | None) -> bool:
    """Whether a route's `{project_id}` (an id or a name) names `project_id`."""
    if ref is None:
        return False
    named_id = as_project_id(ref)
    if named_id is not None:
        return named_id == project_id
    name = await session.scalar(select(Project.name).where(Project.id == project_id))
    return name == ref


Viewer = Annotated[Principal, Depends(authorize(Role.viewer))]
Developer = Annotated[Principal, Depends(authorize(Role.developer))]
Admin = Annotated[Principal, Depends(authorize(Role.admin))]
# For routes without `{project_id}` that confine a limited credential to its project themselves.
ScopedViewer = Annotated[Principal, Depends(authorize(Role.viewer, route_confines=True))]
ScopedDeveloper = Annotated[Principal, Depends(authorize(Role.developer, route_confines=True))]
ScopedAdmin = Annotated[Principal, Depends(authorize(Role.admin, route_confines=True))]
