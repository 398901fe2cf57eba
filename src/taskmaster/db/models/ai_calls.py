"""AI calls: one row per call to a model or a coding agent, with its tokens, cost and the prompt version it used."""

from __future__ import annotations

import uuid

from sqlalchemy import Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from taskmaster.db.base import Base, IdMixin, TimestampMixin


class AiCall(IdMixin, TimestampMixin, Base):
    __tablename__ = "ai_calls"
    __table_args__ = (
        # Sums per project and day (budgets, metrics), per pipeline and per workflow run (pipeline show, codegen show).
        Index("ix_ai_calls_project_id_created_at", "project_id", "created_at"),
        Index("ix_ai_calls_pipeline_id", "pipeline_id"),
        Index("ix_ai_calls_workflow_run_id", "workflow_run_id"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(50))
    """What the call was for: `prd.parse`, `codegen`, `review`, `recovery`, ..."""
    provider: Mapped[str] = mapped_column(String(50))
    """Who answered: `anthropic`, `openai`, `ollama`, `agentapi:<type>`, `codegen`, `offline`."""
    model: Mapped[str | None] = mapped_column(String(200))
    template_name: Mapped[str | None] = mapped_column(String(200))
    template_version: Mapped[int | None]
    input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    requests: Mapped[int] = mapped_column(default=1)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    """None when neither the service nor the price table says what it cost."""
    pipeline_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ci_cd_pipelines.id", ondelete="SET NULL"))
    workflow_run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("workflow_runs.id", ondelete="SET NULL"))
