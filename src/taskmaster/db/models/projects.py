"""Projects: a repository Taskmaster works on, with its forge and per-project configuration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from taskmaster.db.base import Base, IdMixin, TimestampMixin


class Project(IdMixin, TimestampMixin, Base):
    __tablename__ = "projects"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    repository: Mapped[str] = mapped_column(String(1000))
    forge: Mapped[str] = mapped_column(String(20), default="local")
    owner: Mapped[str | None] = mapped_column(String(200))
    repo_name: Mapped[str | None] = mapped_column(String(200))
    default_branch: Mapped[str] = mapped_column(String(200), default="main")
    # Encrypted at rest (Fernet tokens); see taskmaster.secrets.
    webhook_secret: Mapped[str | None] = mapped_column(Text)
    # The secret replaced by the last rotation, still accepted for an overlap after `webhook_secret_rotated_at`.
    webhook_secret_previous: Mapped[str | None] = mapped_column(Text)
    webhook_secret_rotated_at: Mapped[datetime | None]
    forge_token: Mapped[str | None] = mapped_column(Text)
    agentapi_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    claude_code_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pipeline_defaults: Mapped[dict[str, Any]] = mapped_column(default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
