"""AI reviews: one report per review (a pipeline's `ai_review` step or a `/taskmaster review` run) and its findings,
kept with a fingerprint so that an earlier push's findings are not posted again."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from taskmaster.db.base import Base, IdMixin, TimestampMixin


class ReviewReport(IdMixin, TimestampMixin, Base):
    __tablename__ = "review_reports"
    __table_args__ = (Index("ix_review_reports_pipeline_id_step_name", "pipeline_id", "step_name"),)

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    pipeline_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ci_cd_pipelines.id", ondelete="CASCADE"))
    step_name: Mapped[str | None] = mapped_column(String(200))
    workflow_run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("workflow_runs.id", ondelete="SET NULL"))
    pull_request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("pull_requests.id", ondelete="SET NULL"))
    commit_sha: Mapped[str] = mapped_column(String(64))
    reviewer: Mapped[str] = mapped_column(String(100))
    passed: Mapped[bool]
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The `workflows.review.schemas.ReviewReport` as JSON."""


class ReviewFinding(IdMixin, TimestampMixin, Base):
    __tablename__ = "review_findings"
    __table_args__ = (
        # "Was it reported on an earlier push of this pull request?"
        Index("ix_review_findings_pull_request_id_fingerprint", "pull_request_id", "fingerprint"),
        Index("ix_review_findings_report_id", "report_id"),
    )

    report_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("review_reports.id", ondelete="CASCADE"))
    pull_request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("pull_requests.id", ondelete="CASCADE"))
    commit_sha: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(1000))
    start_line: Mapped[int]
    end_line: Mapped[int]
    severity: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(50))
    message: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    posted: Mapped[bool]
    """Shown on a line (new on this push), as opposed to already reported on an earlier one."""
