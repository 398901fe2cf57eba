"""Pipelines, their steps, every attempt of a step, and the step logs (ordered chunks)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from taskmaster.core.clock import utcnow
from taskmaster.db.base import Base, IdMixin, TimestampMixin


class Pipeline(IdMixin, TimestampMixin, Base):
    __tablename__ = "ci_cd_pipelines"
    __table_args__ = (
        Index("ix_ci_cd_pipelines_status_started_at", "status", "started_at"),
        Index("ix_ci_cd_pipelines_project_id_created_at", "project_id", "created_at"),
        Index("ix_ci_cd_pipelines_pull_request_id_status", "pull_request_id", "status"),
        # One live pipeline per trigger: a burst of events for one head sha requests one pipeline.
        Index(
            "uq_ci_cd_pipelines_live_trigger",
            "project_id",
            "trigger_key",
            unique=True,
            sqlite_where=text("status IN ('pending', 'queued', 'running')"),
            postgresql_where=text("status IN ('pending', 'queued', 'running')"),
        ),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    pull_request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("pull_requests.id", ondelete="SET NULL"))
    pipeline_type: Mapped[str] = mapped_column(String(50), default="validation")
    status: Mapped[str] = mapped_column(String(20), default="pending", server_default="pending")
    trigger_event: Mapped[str | None] = mapped_column(String(100))
    branch_name: Mapped[str | None] = mapped_column(String(500))
    commit_sha: Mapped[str | None] = mapped_column(String(64))
    agentapi_session_id: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    superseded_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ci_cd_pipelines.id"))
    failure_reason: Mapped[str | None] = mapped_column(String(20))
    error_message: Mapped[str | None] = mapped_column(Text)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    request_id: Mapped[str | None] = mapped_column(String(100))
    trigger_key: Mapped[str | None] = mapped_column(String(700))
    """`<type>:<pull request number or branch>:<sha>`: what makes two requests the same pipeline."""
    worker_id: Mapped[str | None] = mapped_column(String(200))
    """The engine that owns (is running) it: a `workers.name`. Another worker takes it over only when that one's
    heartbeat is stale (see `pipelines.leases`)."""
    check_run_id: Mapped[str | None] = mapped_column(String(100))
    """The forge's check run that shows it (GitHub as an App), updated by every later report, whichever worker."""
    trial_of: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ci_cd_pipelines.id", ondelete="CASCADE"))
    """A recovery trial of that pipeline (a fix tried on a subset of its steps): never reported to the forge and
    never recovered itself."""
    review_issue_url: Mapped[str | None] = mapped_column(String(1000))
    """The issue opened for manual review when recovery found no fix."""


class PipelineStep(IdMixin, TimestampMixin, Base):
    __tablename__ = "pipeline_steps"
    __table_args__ = (
        UniqueConstraint("pipeline_id", "step_name"),
        # "ready steps": by status, then when a scheduled retry becomes due.
        Index("ix_pipeline_steps_status_next_attempt_at", "status", "next_attempt_at"),
    )

    pipeline_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ci_cd_pipelines.id", ondelete="CASCADE"))
    step_name: Mapped[str] = mapped_column(String(200))
    step_type: Mapped[str] = mapped_column(String(50), default="run")
    position: Mapped[int] = mapped_column(default=0)
    needs: Mapped[list[str]] = mapped_column(default=list)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending", server_default="pending")
    retry_count: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    max_retries: Mapped[int] = mapped_column(default=3, server_default=text("3"))
    exit_code: Mapped[int | None]
    error_message: Mapped[str | None] = mapped_column(Text)
    failure_reason: Mapped[str | None] = mapped_column(String(20))
    worker_id: Mapped[str | None] = mapped_column(String(200))
    next_attempt_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)


class StepAttempt(IdMixin, TimestampMixin, Base):
    """One row per try of a step: the history is never overwritten."""

    __tablename__ = "step_attempts"
    __table_args__ = (UniqueConstraint("step_id", "attempt"),)

    step_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pipeline_steps.id", ondelete="CASCADE"))
    attempt: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default="running")
    exit_code: Mapped[int | None]
    failure_reason: Mapped[str | None] = mapped_column(String(20))
    error_message: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)


class StepLog(IdMixin, Base):
    """An ordered chunk of a step attempt's output; `offset` is its first byte in the whole log."""

    __tablename__ = "step_logs"
    __table_args__ = (UniqueConstraint("step_id", "attempt", "seq"),)

    step_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pipeline_steps.id", ondelete="CASCADE"))
    attempt: Mapped[int]
    seq: Mapped[int]
    offset: Mapped[int] = mapped_column(BigInteger)
    stream: Mapped[str] = mapped_column(String(10), default="stdout")
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
