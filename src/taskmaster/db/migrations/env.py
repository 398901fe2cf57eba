"""Alembic environment: always handed an open connection by `taskmaster.db.migrate`."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from alembic.autogenerate.api import AutogenContext

import taskmaster.db.models  # noqa: F401  (registers every table)
from taskmaster.db.base import Base, UtcDateTime
from taskmaster.db.migrate import object_filter


def render_item(kind: str, obj: Any, autogen: AutogenContext) -> str | Literal[False]:
    """Write our shared column types by name, so migrations read like the models."""
    if kind != "type":
        return False
    if isinstance(obj, UtcDateTime):
        autogen.imports.add("from taskmaster.db.base import UtcDateTime")
        return "UtcDateTime()"
    if isinstance(obj, sa.JSON) and "postgresql" in getattr(obj, "_variant_mapping", {}):
        autogen.imports.add("from taskmaster.db.base import JsonType")
        return "JsonType"
    return False


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `taskmaster db migrate`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    compare_server_default=True,
    render_item=render_item,
    include_object=object_filter(connection.dialect.name),
)
with context.begin_transaction():
    context.run_migrations()
