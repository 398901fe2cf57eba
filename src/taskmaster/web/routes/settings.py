"""Settings pages: API tokens (admin: create, shown once; revoke), prompt templates (view a version, add one,
activate one), and project settings (changed by dotted key, validated as `project update --set` is)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from taskmaster.auth import service as auth_service
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.core.clock import utcnow
from taskmaster.core.errors import InvalidInput, NotFound
from taskmaster.db.models import Project, Template
from taskmaster.projects import settings as project_settings
from taskmaster.projects.service import get_project, list_projects, update_settings
from taskmaster.templates import service as templates_service
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
        created=None, project_values=_values(projects),
    )  # fmt: skip


@router.post("/settings/projects/{project}")
async def change_project_settings(request: Request, project: str, viewer: AdminDep) -> Response:
    """The form's fields are dotted keys; a field left as it was is not a change, an emptied one resets the key."""
    form = await request.form()
    async with services(request).db.autocommit_session() as read:
        chosen = await get_project(read, project)
    viewer.check_visible(chosen.id, f"project {project!r} does not exist")
    current = project_settings.flat(project_settings.load(chosen.settings))
    changes: dict[str, Any] = {}
    for key in current:  # every dotted key, in order
        sent = form.get(key)
        if not isinstance(sent, str) or sent == _shown(current[key]):
            continue
        changes[key] = sent.strip() or None
    if changes:
        async with services(request).db.transaction() as session:
            await update_settings(session, chosen.id, changes, actor=viewer.principal.subject)
    return RedirectResponse(f"/settings#project-{chosen.name}", status_code=303)


def _values(projects: list[Project]) -> dict[uuid.UUID, dict[str, Any]]:
    """Each project's settings by dotted key, defaults included."""
    return {p.id: project_settings.flat(project_settings.load(p.settings)) for p in projects}


def _shown(value: Any) -> str:
    """A setting as its form field shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@router.get("/settings/templates/{name}/{version}", response_class=HTMLResponse)
async def template_page(request: Request, name: str, version: int, viewer: ViewerDep) -> Response:
    async with services(request).db.autocommit_session() as session:
        row = await session.scalar(select(Template).where(Template.name == name, Template.version == version))
        versions = list(await session.scalars(select(Template).where(Template.name == name).order_by(Template.version)))
    if row is None:
        raise NotFound(f"template {name!r} has no version {version}")
    return render(request, "template.html", viewer, template=row, versions=versions)


@router.post("/settings/templates/{name}")
async def add_template_version(
    request: Request, name: str, viewer: AdminDep, content: Annotated[str, Form(min_length=1, max_length=200_000)]
) -> Response:
    """A new version of the template, made active (earlier versions stay, and can be activated again)."""
    async with services(request).db.transaction() as session:
        kind = await templates_service.template_kind(session, name)
        row = await templates_service.add_version(session, name, content, kind=kind)
    return RedirectResponse(f"/settings/templates/{name}/{row.version}", status_code=303)


@router.post("/settings/templates/{name}/{version}/activate")
async def activate_template(request: Request, name: str, version: int, viewer: AdminDep) -> Response:
    async with services(request).db.transaction() as session:
        await templates_service.activate_version(session, name, version)
    return RedirectResponse(f"/settings/templates/{name}/{version}", status_code=303)


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
        created=created, project_values=_values(projects),
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
