"""Rows tests need, made one way: a project (unique name and repository unless given)."""

from __future__ import annotations

import uuid
from typing import Any

from taskmaster.db.models import Project
from taskmaster.db.session import Database


async def make_project(db: Database, name: str | None = None, **fields: Any) -> Project:
    """A committed project; `fields` are its columns (e.g. `repository`, `forge`, `settings`)."""
    unique = uuid.uuid4().hex[:8]
    fields.setdefault("repository", f"/repos/{name or unique}")
    fields.setdefault("forge", "local")
    async with db.transaction() as session:
        project = Project(name=name or f"app-{unique}", **fields)
        session.add(project)
    return project
