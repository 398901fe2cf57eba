"""Pull (merge) requests seen on a forge, linked to the task that produced them."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from taskmaster.db.base import Base, IdMixin, TimestampMixin


class PullRequest(IdMixin, TimestampMixin, Base):
    __tablename__ = "pull_requests"
    __table_args__ = (UniqueConstraint("project_id", "number"),)

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    number: Mapped[int]
    title: Mapped[str | None] = mapped_column(String(1000))
    head_ref: Mapped[str] = mapped_column(String(500))
    head_sha: Mapped[str] = mapped_column(String(64))
    base_ref: Mapped[str] = mapped_column(String(500))
    base_sha: Mapped[str | None] = mapped_column(String(64))
    author: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default="open")
    draft: Mapped[bool] = mapped_column(default=False)
    merged: Mapped[bool] = mapped_column(default=False)
    url: Mapped[str | None] = mapped_column(String(1000))
    task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    body: Mapped[str | None] = mapped_column(Text)
    """The description, kept by the local forge (forge pull requests keep theirs on the forge)."""
    merge_commit_sha: Mapped[str | None] = mapped_column(String(64))
    """The commit the local forge's merge made."""
