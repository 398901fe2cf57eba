"""ai calls: tokens, cost and prompt version of every model or agent call

Revision ID: 0009_ai_calls
Revises: 0008_web_sessions
Create Date: 2026-12-05 01:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from taskmaster.db.base import UtcDateTime

revision: str = "0009_ai_calls"
down_revision: str | None = "0008_web_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ai_calls",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=50), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("template_name", sa.String(length=200), nullable=True),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("pipeline_id", sa.Uuid(), nullable=True),
        sa.Column("workflow_run_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_ai_calls_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["ci_cd_pipelines.id"],
            name=op.f("fk_ai_calls_pipeline_id_ci_cd_pipelines"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workflow_run_id"],
            ["workflow_runs.id"],
            name=op.f("fk_ai_calls_workflow_run_id_workflow_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_calls")),
    )
    op.create_index("ix_ai_calls_project_id_created_at", "ai_calls", ["project_id", "created_at"], unique=False)
    op.create_index("ix_ai_calls_pipeline_id", "ai_calls", ["pipeline_id"], unique=False)
    op.create_index("ix_ai_calls_workflow_run_id", "ai_calls", ["workflow_run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ai_calls_workflow_run_id", table_name="ai_calls")
    op.drop_index("ix_ai_calls_pipeline_id", table_name="ai_calls")
    op.drop_index("ix_ai_calls_project_id_created_at", table_name="ai_calls")
    op.drop_table("ai_calls")
