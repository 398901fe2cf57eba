"""Template use cases: the active version of a named template (seeded from a default), versions listed, added and
activated. A new version never overwrites an old one; exactly one version of a name is active. The caller owns the
transaction.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.errors import NotFound
from taskmaster.db.models import Template
from taskmaster.templates.schemas import TemplateDetail, TemplateSummary, TemplateVersionOut
from taskmaster.templates.syntax import check, default_names, default_text, has_default, known_name

MAX_VERSION = 2**31 - 1
"""The largest version number the column holds (a larger one asked for is simply not there)."""


async def active_version(session: AsyncSession, name: str) -> Template | None:
    """The active version of `name`, or None when none is stored."""
    return await session.scalar(
        select(Template).where(Template.name == name, Template.is_active.is_(True)).order_by(Template.version.desc())
    )


async def add_version(session: AsyncSession, name: str, content: str, *, kind: str = "prompt") -> Template:
    """Store `content` as the next version of `name` and make it the active one. Text that does not parse is
    refused (`TemplateRenderError`, its line named); a name with a shipped default but no stored version gets the
    default as version 1 first, so the version a person replaced stays in the history."""
    check(content, name=name)
    latest = await session.scalar(select(func.max(Template.version)).where(Template.name == name)) or 0
    if latest == 0 and has_default(name) and content != default_text(name):
        session.add(Template(name=name, kind=kind, version=1, content=default_text(name), is_active=False))
        latest = 1
    await session.execute(update(Template).where(Template.name == name).values(is_active=False))
    row = Template(name=name, kind=kind, version=latest + 1, content=content, is_active=True)
    session.add(row)
    await session.flush()
    return row


async def activate_version(session: AsyncSession, name: str, version: int) -> Template:
    """Make `version` of `name` the active one (the others of that name inactive); `NotFound` if there is none."""
    known_name(name, f"there is no template named {name[:200]!r}")
    if not 1 <= version <= MAX_VERSION:
        raise NotFound(f"template {name!r} has no version {version}")
    row = await session.scalar(select(Template).where(Template.name == name, Template.version == version))
    if row is None:
        raise NotFound(f"template {name!r} has no version {version}")
    await session.execute(update(Template).where(Template.name == name).values(is_active=False))
    row.is_active = True
    await session.flush()
    return row


async def list_templates(session: AsyncSession) -> list[TemplateSummary]:
    """Every stored template by name, and the shipped defaults not stored yet (`active_version` None)."""
    rows = list(await session.scalars(select(Template).order_by(Template.name, Template.version)))
    by_name: dict[str, list[Template]] = {}
    for row in rows:
        by_name.setdefault(row.name, []).append(row)
    summaries = [
        TemplateSummary(
            name=name,
            kind=versions[-1].kind,
            active_version=next((v.version for v in versions if v.is_active), None),
            versions=len(versions),
            updated_at=max(v.created_at for v in versions),
        )
        for name, versions in by_name.items()
    ]
    summaries += [
        TemplateSummary(name=name, kind="prompt", active_version=None, versions=0, updated_at=None)
        for name in default_names()
        if name not in by_name
    ]
    return sorted(summaries, key=lambda summary: summary.name)


async def template_detail(session: AsyncSession, name: str) -> TemplateDetail:
    """A template with every version, oldest first; `NotFound` for a name neither stored nor shipped."""
    known_name(name, f"there is no template named {name[:200]!r}")
    rows = list(await session.scalars(select(Template).where(Template.name == name).order_by(Template.version)))
    if not rows:
        if not has_default(name):
            raise NotFound(f"there is no template named {name!r}")
        shipped = TemplateVersionOut(
            name=name, kind="prompt", version=1, is_active=True, content=default_text(name), created_at=None
        )
        return TemplateDetail(name=name, kind="prompt", active_version=None, versions=[shipped])
    versions = [
        TemplateVersionOut(
            name=r.name,
            kind=r.kind,
            version=r.version,
            is_active=r.is_active,
            content=r.content,
            created_at=r.created_at,
        )
        for r in rows
    ]
    active = next((v.version for v in versions if v.is_active), None)
    return TemplateDetail(name=name, kind=rows[-1].kind, active_version=active, versions=versions)


async def template_kind(session: AsyncSession, name: str) -> str:
    """The kind of a stored template, "prompt" for a shipped default; `NotFound` for an unknown name (new names
    are not made through the doors: a template is read by code that ships its default)."""
    known_name(name, f"there is no template named {name[:200]!r}")
    kind = await session.scalar(select(Template.kind).where(Template.name == name).limit(1))
    if kind is not None:
        return kind
    if has_default(name):
        return "prompt"
    raise NotFound(f"there is no template named {name!r}")
