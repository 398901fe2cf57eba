"""Migrations run upgrade -> downgrade -> upgrade on both databases and leave the models' schema."""

from __future__ import annotations

from sqlalchemy import inspect

from taskmaster.config import Settings
from taskmaster.db import migrate
from taskmaster.db.base import Base
from taskmaster.db.session import Database

EXPECTED_TABLES = {
    "projects", "tasks", "pull_requests", "ci_cd_pipelines", "pipeline_steps", "templates",
    "step_attempts", "step_logs", "webhook_deliveries", "agent_sessions", "workers",
    "users", "role_bindings", "api_tokens", "audit_events",
}  # fmt: skip


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    return names - {"alembic_version"}


async def test_upgrade_downgrade_upgrade_leaves_the_models_schema(settings: Settings) -> None:
    db = Database.from_settings(settings)
    try:
        assert (await migrate.status(db)).current is None
        await migrate.upgrade(db)
        assert await _tables(db) == EXPECTED_TABLES == set(Base.metadata.tables)
        await migrate.downgrade(db, "base")
        assert await _tables(db) == set()
        await migrate.upgrade(db)
        state = await migrate.status(db)
        assert state.up_to_date
        assert state.current == state.head
        assert await migrate.pending_changes(db) == []
    finally:
        await db.dispose()


async def test_status_reports_behind_until_migrated(settings: Settings) -> None:
    db = Database.from_settings(settings)
    try:
        before = await migrate.status(db)
        assert before.head is not None
        assert not before.up_to_date
        await migrate.upgrade(db)
        assert (await migrate.status(db)).up_to_date
    finally:
        await db.dispose()
