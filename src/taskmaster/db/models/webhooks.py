"""Webhook deliveries: persisted before they are acknowledged, processed later by the worker."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from taskmaster.db.base import Base, IdMixin, TimestampMixin


class WebhookDelivery(IdMixin, TimestampMixin, Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # hook_id is '' when the forge sends none, so the key stays unique on PostgreSQL too. The project is part of
        # it: one delivery is kept for each project of a repository whose secret verifies it.
        UniqueConstraint("provider", "hook_id", "delivery_id", "project_id"),
        Index("ix_webhook_deliveries_status_created_at", "status", "created_at"),
        # The worker's queue: deliveries due for (another) processing attempt.
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    provider: Mapped[str] = mapped_column(String(20))
    hook_id: Mapped[str] = mapped_column(String(100), default="")
    delivery_id: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(100))
    action: Mapped[str | None] = mapped_column(String(100))
    project_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"))
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default="received")
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """What processing did: the event kind, pipelines requested, superseded or cancelled."""
