"""Template use cases: the active version of a named template (seeded from a default), and new versions.

A new version never overwrites an old one; exactly one version of a name is active. The caller owns the transaction.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.errors import NotFound
from taskmaster.db.models import Template


async def active_template(session: AsyncSession, name: str, *, default: str, kind: str = "prompt") -> Template:
    """The active version of `name`; the first call stores `default` as version 1."""
    query = (
        select(Template).where(Template.name == name, Template.is_active.is_(True)).order_by(Template.version.desc())
    )
    row = await session.scalar(query)
    if row is not None:
        return row
    try:
        # A savepoint: two first uses at once (parallel codegen runs) both insert version 1; the loser reads the
        # winner's row instead of failing its transaction.
        async with session.begin_nested():
            return await add_version(session, name, default, kind=kind)
    except IntegrityError:
        row = await session.scalar(query)
        if row is None:
            raise
        return row


async def add_version(session: AsyncSession, name: str, content: str, *, kind: str = "prompt") -> Template:
    """Store `content` as the next version of `name` and make it the active one."""
    latest = await session.scalar(select(func.max(Template.version)).where(Template.name == name)) or 0
    await session.execute(update(Template).where(Template.name == name).values(is_active=False))
    row = Template(name=name, kind=kind, version=latest + 1, content=content, is_active=True)
    session.add(row)
    await session.flush()
    return row


async def activate_version(session: AsyncSession, name: str, version: int) -> Template:
    """Make `version` of `name` the active one (the others of that name inactive); `NotFound` if there is none."""
    row = await session.scalar(select(Template).where(Template.name == name, Template.version == version))
    if row is None:
        raise NotFound(f"template {name!r} has no version {version}")
    await session.execute(update(Template).where(Template.name == name).values(is_active=False))
    row.is_active = True
    await session.flush()
    return row
