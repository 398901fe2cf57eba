"""Workflow runs: requested pieces of the AI loop (a review, a recovery), queued in a table and owned by a worker."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from taskmaster.db.base import Base, IdMixin, TimestampMixin


class WorkflowRun(IdMixin, TimestampMixin, Base):
    __tablename__ = "workflow_runs"
    __table_args__ = (
        # The loop's query: the oldest pending run; the reaper's: live runs and their owners.
        Index("ix_workflow_runs_status_created_at", "status", "created_at"),
        # One live run per trigger: a burst of identical requests makes one run.
        Index(
            "uq_workflow_runs_live_trigger",
            "project_id",
            "trigger_key",
            unique=True,
            sqlite_where=text("status IN ('pending', 'running')"),
            postgresql_where=text("status IN ('pending', 'running')"),
        ),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50))
    """What runs: a name in the workflow registry (`review`, `recovery`)."""
    status: Mapped[str] = mapped_column(String(20), default="pending", server_default="pending")
    """pending → running → succeeded | failed | canceled."""
    trigger_key: Mapped[str] = mapped_column(String(700))
    """`<kind>:<subject>`: what makes two requests the same run while one is live."""
    trigger_event: Mapped[str | None] = mapped_column(String(100))
    request_id: Mapped[str | None] = mapped_column(String(100))
    pipeline_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ci_cd_pipelines.id", ondelete="CASCADE"))
    step_name: Mapped[str | None] = mapped_column(String(200))
    pull_request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("pull_requests.id", ondelete="SET NULL"))
    commit_sha: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """What the requester passed (e.g. a failed step's log tail)."""
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """What the run decided (e.g. `{"decision": "recovered"}`)."""
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    """How many times a worker started it (a take-over starts it again)."""
    worker_id: Mapped[str | None] = mapped_column(String(200))
    """The owner while it runs: a `workers.name` (see `db.leases`)."""
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class WorkflowStep(IdMixin, TimestampMixin, Base):
    """One recorded step of a run (`workflows.journal`): an external effect done once, its output kept so that a
    run started again after a crash returns it instead of doing the effect a second time."""

    __tablename__ = "workflow_steps"
    __table_args__ = (UniqueConstraint("run_id", "name"),)

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    output: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempt: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    """The run's attempt that started it last (a step started but never finished is run again)."""
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
