"""workflow runs: requested review and recovery runs, queued and owned by a worker

Revision ID: 0005_workflow_runs
Revises: 0004
Create Date: 2026-12-04 22:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from taskmaster.db.base import JsonType, UtcDateTime

revision: str = "0005_workflow_runs"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = "status IN ('pending', 'running')"


def upgrade() -> None:
    op.create_table(
        "workflow_runs",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("trigger_key", sa.String(length=700), nullable=False),
        sa.Column("trigger_event", sa.String(length=100), nullable=True),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.Column("pipeline_id", sa.Uuid(), nullable=True),
        sa.Column("step_name", sa.String(length=200), nullable=True),
        sa.Column("pull_request_id", sa.Uuid(), nullable=True),
        sa.Column("commit_sha", sa.String(length=64), nullable=True),
        sa.Column("params", JsonType, nullable=False),
        sa.Column("result", JsonType, nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["ci_cd_pipelines.id"], name=op.f("fk_workflow_runs_pipeline_id_ci_cd_pipelines"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_workflow_runs_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["pull_request_id"], ["pull_requests.id"], name=op.f("fk_workflow_runs_pull_request_id_pull_requests"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_runs")),
    )  # fmt: skip
    op.create_index("ix_workflow_runs_status_created_at", "workflow_runs", ["status", "created_at"], unique=False)
    op.create_index(
        "uq_workflow_runs_live_trigger",
        "workflow_runs",
        ["project_id", "trigger_key"],
        unique=True,
        sqlite_where=sa.text(_LIVE),
        postgresql_where=sa.text(_LIVE),
    )


def downgrade() -> None:
    op.drop_index("uq_workflow_runs_live_trigger", table_name="workflow_runs")
    op.drop_index("ix_workflow_runs_status_created_at", table_name="workflow_runs")
    op.drop_table("workflow_runs")
