"""recovery: rounds of AI recovery, trial pipelines and the manual-review issue of a pipeline

Revision ID: 0013_recovery
Revises: 0012_review
Create Date: 2026-12-05 01:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from taskmaster.db.base import UtcDateTime

revision: str = "0013_recovery"
down_revision: str | None = "0012_review"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ci_cd_pipelines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trial_of", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("review_issue_url", sa.String(length=1000), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_ci_cd_pipelines_trial_of_ci_cd_pipelines"),
            "ci_cd_pipelines",
            ["trial_of"],
            ["id"],
            ondelete="CASCADE",
        )
    op.create_table(
        "recovery_rounds",
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("step_name", sa.String(length=200), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("workflow_run_id", sa.Uuid(), nullable=True),
        sa.Column("agent", sa.String(length=100), nullable=False),
        sa.Column("template_name", sa.String(length=200), nullable=True),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("patch", sa.Text(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("result", sa.String(length=30), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("trial_pipeline_id", sa.Uuid(), nullable=True),
        sa.Column("fix_sha", sa.String(length=64), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["ci_cd_pipelines.id"],
            name=op.f("fk_recovery_rounds_pipeline_id_ci_cd_pipelines"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["trial_pipeline_id"],
            ["ci_cd_pipelines.id"],
            name=op.f("fk_recovery_rounds_trial_pipeline_id_ci_cd_pipelines"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workflow_run_id"],
            ["workflow_runs.id"],
            name=op.f("fk_recovery_rounds_workflow_run_id_workflow_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_rounds")),
        sa.UniqueConstraint(
            "pipeline_id", "step_name", "round", name=op.f("uq_recovery_rounds_pipeline_id_step_name_round")
        ),
    )
    op.create_index("ix_recovery_rounds_fix_sha", "recovery_rounds", ["fix_sha"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_recovery_rounds_fix_sha", table_name="recovery_rounds")
    op.drop_table("recovery_rounds")
    with op.batch_alter_table("ci_cd_pipelines", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_ci_cd_pipelines_trial_of_ci_cd_pipelines"), type_="foreignkey")
        batch_op.drop_column("review_issue_url")
        batch_op.drop_column("trial_of")
