"""/api/templates: prompt templates and their versions (viewers read; admins add a version or activate one).

A new version that does not parse is refused with a 422 naming its line; nothing is stored then.
"""

from __future__ import annotations

from fastapi import APIRouter, status

from taskmaster.api.deps import Admin, ReadSessionDep, SessionDep, Viewer
from taskmaster.audit import service as audit
from taskmaster.db.models import Template
from taskmaster.templates import service
from taskmaster.templates.schemas import (
    TemplateActivate,
    TemplateDetail,
    TemplateSummary,
    TemplateVersionIn,
    TemplateVersionOut,
)

router = APIRouter(prefix="/api/templates", tags=["templates"])


def _out(row: Template) -> TemplateVersionOut:
    return TemplateVersionOut(
        name=row.name, kind=row.kind, version=row.version, is_active=row.is_active, content=row.content,
        created_at=row.created_at,
    )  # fmt: skip


@router.get("")
async def list_templates(session: ReadSessionDep, _: Viewer) -> list[TemplateSummary]:
    """Every template with its active version (None for a shipped default not stored yet)."""
    return await service.list_templates(session)


@router.get("/{name}")
async def get_template(name: str, session: ReadSessionDep, _: Viewer) -> TemplateDetail:
    """A template with every version, oldest first."""
    return await service.template_detail(session, name)


@router.post("/{name}/versions", status_code=status.HTTP_201_CREATED)
async def add_version(name: str, spec: TemplateVersionIn, session: SessionDep, principal: Admin) -> TemplateVersionOut:
    """Store a new version and make it the active one (earlier versions stay and can be activated again)."""
    kind = await service.template_kind(session, name)
    row = await service.add_version(session, name, spec.content, kind=kind)
    await audit.record(
        session, actor=principal.subject, action="template.version.add", target_type="template", target_id=row.id,
        data={"name": name, "version": row.version},
    )  # fmt: skip
    await session.commit()
    return _out(row)


@router.post("/{name}/activate")
async def activate(name: str, spec: TemplateActivate, session: SessionDep, principal: Admin) -> TemplateVersionOut:
    """Make an existing version the active one."""
    row = await service.activate_version(session, name, spec.version)
    await audit.record(
        session, actor=principal.subject, action="template.activate", target_type="template", target_id=row.id,
        data={"name": name, "version": row.version},
    )  # fmt: skip
    await session.commit()
    return _out(row)
