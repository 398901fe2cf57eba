"""Tasks: the graph a PRD is broken into; agents claim the next ready one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from taskmaster.db.base import Base, IdMixin, TimestampMixin


class Task(IdMixin, TimestampMixin, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # "next task": pending tasks of a project in the order `next` ranks them (tasks/service.py).
        Index(
            "ix_tasks_ready_order",
            "project_id",
            "status",
            "priority",
            text("dependents_count DESC"),
            # An expression both databases can walk in order; NULLS LAST would make SQLite sort instead.
            text("coalesce(complexity, 11)"),
            "number",
        ),
        Index("ix_tasks_parent_task_id", "parent_task_id"),
        UniqueConstraint("project_id", "number"),
    )

    number: Mapped[int]
    """A small per-project number people can type ("task 12"); the id stays the UUID."""

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    details: Mapped[str | None] = mapped_column(Text)
    test_strategy: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(20), default="feature", server_default="feature")
    status: Mapped[str] = mapped_column(String(20), default="pending", server_default="pending")
    priority: Mapped[int] = mapped_column(default=3, server_default=text("3"))
    complexity: Mapped[int | None]
    # The seed's column: ids of the tasks this one depends on, as strings. `task_dependencies` holds the same
    # edges as rows so the ready/next queries can use indexes; the tasks service writes both together.
    dependencies: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    dependents_count: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    """How many tasks transitively depend on this one: `next` moves work that unblocks most first."""
    parent_task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    assignee: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    source_section: Mapped[str | None] = mapped_column(String(500))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TaskDependency(Base):
    """Edge `task_id` depends on `depends_on_id` (same project). Deleting either task removes the edge."""

    __tablename__ = "task_dependencies"
    __table_args__ = (Index("ix_task_dependencies_depends_on_id", "depends_on_id"),)

    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    depends_on_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
