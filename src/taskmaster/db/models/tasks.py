"""Tasks: the graph a PRD is broken into; agents claim the next ready one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from taskmaster.db.base import Base, IdMixin, TimestampMixin


class Task(IdMixin, TimestampMixin, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # "next task": ready tasks of a project by status, then priority.
        Index("ix_tasks_next", "project_id", "status", "priority"),
        Index("ix_tasks_parent_task_id", "parent_task_id"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    details: Mapped[str | None] = mapped_column(Text)
    test_strategy: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(20), default="feature", server_default="feature")
    status: Mapped[str] = mapped_column(String(20), default="pending", server_default="pending")
    priority: Mapped[int] = mapped_column(default=3, server_default=text("3"))
    complexity: Mapped[int | None]
    dependencies: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    parent_task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    assignee: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    source_section: Mapped[str | None] = mapped_column(String(500))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
