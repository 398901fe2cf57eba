"""Migration 0014 stores every shipped default as version 1, leaves names that have versions alone, moves an
untouched `$`-placeholder `prd.parse` to the Jinja2 default; its downgrade removes only what nothing was built on."""

from __future__ import annotations

import importlib

from sqlalchemy import select

from taskmaster.config import Settings
from taskmaster.db import migrate
from taskmaster.db.models import Template
from taskmaster.db.session import Database
from taskmaster.templates import service
from taskmaster.templates.syntax import default_names, default_text

SEED = importlib.import_module("taskmaster.db.migrations.versions.0014_seed_templates")


async def _versions(db: Database) -> dict[str, list[tuple[int, bool]]]:
    async with db.session() as session:
        rows = (await session.scalars(select(Template).order_by(Template.name, Template.version))).all()
    found: dict[str, list[tuple[int, bool]]] = {}
    for row in rows:
        found.setdefault(row.name, []).append((row.version, row.is_active))
    return found


async def test_every_default_is_seeded_once_and_downgrade_keeps_what_was_built_on(settings: Settings) -> None:
    db = Database.from_settings(settings)
    try:
        await migrate.upgrade(db)
        assert {"prd.parse", "task.expand"} <= set(default_names())
        assert await _versions(db) == {name: [(1, True)] for name in default_names()}
        async with db.transaction() as session:
            row = await session.scalar(select(Template).where(Template.name == "task.expand"))
            assert row is not None and row.content == default_text("task.expand")
            assert row.meta == {"seeded_by": "0014_seed_templates"} and row.kind == "prompt"
            await service.add_version(session, "task.expand", "Split {{ title }}")

        await migrate.downgrade(db, "0009_ai_calls")
        # The seeded version 1 of task.expand is the history of version 2: it stays.
        assert await _versions(db) == {"task.expand": [(1, False), (2, True)]}

        await migrate.upgrade(db)  # idempotent: a name with versions is left as it is
        expected = {name: [(1, True)] for name in default_names()} | {"task.expand": [(1, False), (2, True)]}
        assert await _versions(db) == expected
    finally:
        await db.dispose()


async def test_an_untouched_dollar_prd_prompt_gets_the_jinja_default_and_gets_it_back_on_downgrade(
    settings: Settings,
) -> None:
    db = Database.from_settings(settings)
    try:
        await migrate.upgrade(db, "0009_ai_calls")
        async with db.transaction() as session:  # what an earlier release stored on first use
            session.add(Template(name="prd.parse", version=1, content=SEED._DOLLAR_PRD_PARSE, is_active=True))
        await migrate.upgrade(db)
        async with db.session() as session:
            active = await service.active_version(session, "prd.parse")
            assert active is not None
        assert (active.version, active.content) == (2, default_text("prd.parse"))

        await migrate.downgrade(db, "0009_ai_calls")
        assert await _versions(db) == {"prd.parse": [(1, True)]}
    finally:
        await db.dispose()
