"""The local forge's records beside `pull_requests`: issues, the marked PR comments, commit statuses, check runs
and reviews of projects whose repository is a local path (see `forges/local/`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from taskmaster.db.base import Base, IdMixin, TimestampMixin


class LocalIssue(IdMixin, TimestampMixin, Base):
    """An issue of a local-forge project; its number comes from the sequence pull requests use too (as on GitHub)."""

    __tablename__ = "local_issues"
    __table_args__ = (UniqueConstraint("project_id", "number"),)

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    number: Mapped[int]
    title: Mapped[str] = mapped_column(String(1000))
    body: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(20), default="open")
    labels: Mapped[list[str]] = mapped_column(default=list)
    author: Mapped[str | None] = mapped_column(String(200))


class LocalComment(IdMixin, TimestampMixin, Base):
    """A pull request's persistent comment: one per marker, edited in place."""

    __tablename__ = "local_comments"
    __table_args__ = (UniqueConstraint("project_id", "number", "marker"),)

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    number: Mapped[int]
    marker: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)


class LocalCommitStatus(IdMixin, TimestampMixin, Base):
    """A commit status: one per commit and context, replaced by a later one of the same context."""

    __tablename__ = "local_commit_statuses"
    __table_args__ = (UniqueConstraint("project_id", "sha", "context"),)

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    sha: Mapped[str] = mapped_column(String(64))
    context: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(20))
    description: Mapped[str | None] = mapped_column(Text)
    target_url: Mapped[str | None] = mapped_column(String(1000))


class LocalCheckRun(IdMixin, TimestampMixin, Base):
    """A check run on a commit, with its annotations (added to on each update, as GitHub does)."""

    __tablename__ = "local_check_runs"
    __table_args__ = (Index("ix_local_check_runs_project_id_head_sha", "project_id", "head_sha"),)

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    head_sha: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20))
    conclusion: Mapped[str | None] = mapped_column(String(20))
    title: Mapped[str | None] = mapped_column(String(1000))
    summary: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str | None] = mapped_column(Text)
    details_url: Mapped[str | None] = mapped_column(String(1000))
    external_id: Mapped[str | None] = mapped_column(String(200))
    annotations: Mapped[list[Any]] = mapped_column(default=list)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class LocalReview(IdMixin, TimestampMixin, Base):
    """A review of a pull request at one commit: its body and its inline comments (path, lines, body)."""

    __tablename__ = "local_reviews"
    __table_args__ = (Index("ix_local_reviews_project_id_number", "project_id", "number"),)

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    number: Mapped[int]
    commit_sha: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text, default="")
    comments: Mapped[list[Any]] = mapped_column(default=list)
