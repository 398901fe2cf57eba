"""Workers: one row per worker identity (its worker id), kept fresh by heartbeats."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from taskmaster.db.base import Base, IdMixin, TimestampMixin


class Worker(IdMixin, TimestampMixin, Base):
    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_last_heartbeat_at", "last_heartbeat_at"),)

    name: Mapped[str] = mapped_column(String(200), unique=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    version: Mapped[str] = mapped_column(String(50))
    mode: Mapped[str] = mapped_column(String(20), default="process")
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[datetime]
    last_heartbeat_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
    capabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
