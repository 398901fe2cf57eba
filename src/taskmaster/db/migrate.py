"""Schema migrations (Alembic) driven from code: migrate, status, create-migration, downgrade."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from taskmaster.core.errors import Unavailable
from taskmaster.db.base import Base
from taskmaster.db.session import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


# SQLite reflects an index with an expression part (`dependents_count DESC`) without it, so autogenerate would
# see a difference forever; PostgreSQL reflects it exactly and keeps it checked.
_EXPRESSION_INDEXES = frozenset({"ix_tasks_ready_order"})


def object_filter(dialect: str) -> Callable[..., bool]:
    """Autogenerate's `include_object` for a dialect; shared by `env.py` and `pending_changes`."""

    def include(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        return not (kind == "index" and name in _EXPRESSION_INDEXES and dialect == "sqlite")

    return include


@dataclass(frozen=True)
class MigrationStatus:
    current: str | None
    head: str | None

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("version_path_separator", "os")
    return cfg


def _with_connection(connection: Connection, action: Any, *args: Any) -> Any:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    with warnings.catch_warnings():
        # A batch migration on SQLite reflects the tables its table refers to; the tasks table's expression index
        # cannot be reflected there, and need not be: batch mode never rebuilds a table it only refers to.
        warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")
        return action(cfg, *args)


async def ensure_schema(db: Database, *, embedded: bool) -> None:
    """Embedded SQLite migrates itself; PostgreSQL is migrated on purpose, so a schema behind head is refused."""
    if embedded:
        await upgrade(db)
        return
    state = await status(db)
    if not state.up_to_date:
        raise Unavailable(
            f"database schema is at {state.current or 'nothing'}, this version needs {state.head}: "
            "run `taskmaster db migrate`"
        )


async def upgrade(db: Database, revision: str = "head") -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(_with_connection, command.upgrade, revision)


async def downgrade(db: Database, revision: str = "base") -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(_with_connection, command.downgrade, revision)


async def status(db: Database) -> MigrationStatus:
    def read(conn: Connection) -> MigrationStatus:
        current = MigrationContext.configure(conn).get_current_revision()
        return MigrationStatus(current=current, head=ScriptDirectory.from_config(alembic_config()).get_current_head())

    async with db.engine.connect() as conn:
        result: MigrationStatus = await conn.run_sync(read)
        return result


async def pending_changes(db: Database) -> list[Any]:
    """What autogenerate would still write: empty when the migrated schema matches the models."""

    def diff(conn: Connection) -> list[Any]:
        opts = {
            "compare_type": True,
            "compare_server_default": True,
            "include_object": object_filter(conn.dialect.name),
        }
        context = MigrationContext.configure(conn, opts=opts)
        with warnings.catch_warnings():
            # SQLite cannot reflect the expression index at all; `object_filter` already leaves it out there.
            warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")
            warnings.filterwarnings("ignore", message="autogenerate skipping metadata-specified expression-based")
            return list(compare_metadata(context, Base.metadata))

    async with db.engine.connect() as conn:
        result: list[Any] = await conn.run_sync(diff)
        return result


async def create_migration(db: Database, message: str) -> Path:
    """Autogenerate a revision against the database, which must be at head first."""

    def revise(conn: Connection) -> Path:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        script = command.revision(cfg, message=message, autogenerate=True)
        first = script[0] if isinstance(script, list) else script
        if first is None:
            raise RuntimeError("alembic wrote no revision")
        return Path(first.path)

    async with db.engine.connect() as conn:
        path: Path = await conn.run_sync(revise)
        return path
