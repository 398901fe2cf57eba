"""Agent sessions: one coding agent run (AgentAPI or Codegen) working on a task."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from taskmaster.db.base import Base, IdMixin, TimestampMixin


class AgentSession(IdMixin, TimestampMixin, Base):
    __tablename__ = "agent_sessions"
    __table_args__ = (Index("ix_agent_sessions_status_last_activity_at", "status", "last_activity_at"),)

    project_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    agent_type: Mapped[str] = mapped_column(String(50))
    provider: Mapped[str] = mapped_column(String(50), default="agentapi")
    external_id: Mapped[str | None] = mapped_column(String(200))
    server_url: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20), default="starting")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    last_activity_at: Mapped[datetime | None]
