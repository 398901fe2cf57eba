"""Recovery rounds: one row per debug round of a failed step (the patch, its checks, its trial and its outcome)."""

from __future__ import annotations

import uuid

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from taskmaster.db.base import Base, IdMixin, TimestampMixin


class RecoveryRound(IdMixin, TimestampMixin, Base):
    __tablename__ = "recovery_rounds"
    __table_args__ = (
        UniqueConstraint("pipeline_id", "step_name", "round"),
        # "Is this commit a fix Taskmaster made?": asked for every new pipeline of a pull request.
        Index("ix_recovery_rounds_fix_sha", "fix_sha"),
    )

    pipeline_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ci_cd_pipelines.id", ondelete="CASCADE"))
    step_name: Mapped[str] = mapped_column(String(200))
    round: Mapped[int]
    workflow_run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("workflow_runs.id", ondelete="SET NULL"))
    agent: Mapped[str] = mapped_column(String(100))
    """Who debugged: `anthropic`, `openai`, `ollama`, `agentapi:<type>`, `codegen`."""
    template_name: Mapped[str | None] = mapped_column(String(200))
    template_version: Mapped[int | None]
    input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    patch: Mapped[str | None] = mapped_column(Text)
    explanation: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str] = mapped_column(String(30))
    """`running`, `no_fix`, `refused` (the checks), `red` (the trial failed), `green`, `pushed`, `suggested`,
    `handed_off` (to Codegen), `error`."""
    detail: Mapped[str | None] = mapped_column(Text)
    trial_pipeline_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ci_cd_pipelines.id", ondelete="SET NULL"))
    fix_sha: Mapped[str | None] = mapped_column(String(64))
