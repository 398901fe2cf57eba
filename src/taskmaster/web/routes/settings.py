"""Settings pages: API tokens (admin: create, shown once; revoke), prompt templates, and project settings."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from taskmaster.auth import service as auth_service
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.core.clock import utcnow
from taskmaster.core.errors import InvalidInput
from taskmaster.db.models import Template
from taskmaster.projects.service import get_project, list_projects
from taskmaster.web.deps import AdminDep, ViewerDep, services
from taskmaster.web.pages import PageRoute, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request, viewer: ViewerDep) -> Response:
    async with services(request).db.autocommit_session() as session:
        tokens = await auth_service.list_tokens(session) if viewer.is_admin else []
        templates = list(await session.scalars(select(Template).order_by(Template.name, Template.version.desc())))
        projects = [p for p in await list_projects(session) if viewer.sees(p.id)]
    return render(
        request, "settings.html", viewer, tokens=tokens, templates=templates, projects=projects, roles=list(Role),
        created=None,
    )  # fmt: skip


@router.post("/settings/tokens", response_class=HTMLResponse)
async def create_token(
    request: Request,
    viewer: AdminDep,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    role: Annotated[Role, Form()],
    project: Annotated[str, Form()] = "",
    expires_in_days: Annotated[int | None, Form(ge=1, le=3650)] = None,
) -> Response:
    """The new token is shown on the answer page once; it is stored only as a hash."""
    app = services(request)
    async with app.db.transaction() as session:
        project_id = (await get_project(session, project)).id if project else None
        expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
        created = await auth_service.create_token(
            session,
            spec=TokenSpec(name=name, role=role, project_id=project_id, expires_at=expires),
            created_by=viewer.principal.subject,
        )
    async with app.db.autocommit_session() as session:
        tokens = await auth_service.list_tokens(session)
        templates = list(await session.scalars(select(Template).order_by(Template.name, Template.version.desc())))
        projects = await list_projects(session)
    return render(
        request, "settings.html", viewer, tokens=tokens, templates=templates, projects=projects, roles=list(Role),
        created=created,
    )  # fmt: skip


@router.post("/settings/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: str, viewer: AdminDep) -> Response:
    try:
        key = uuid.UUID(token_id)
    except ValueError:
        raise InvalidInput(f"not a token id: {token_id[:100]!r}") from None
    app = services(request)
    async with app.db.transaction() as session:
        await auth_service.revoke_token(session, token_id=key, actor=viewer.principal.subject)
    if app.principals is not None:
        app.principals.forget(key)
    return RedirectResponse("/settings", status_code=303)
