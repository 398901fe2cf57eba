"""review: AI review reports and their findings (with fingerprints, so a finding is posted once per PR)

Revision ID: 0012_review
Revises: 0010_local_forge
Create Date: 2026-12-05 01:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from taskmaster.db.base import JsonType, UtcDateTime

revision: str = "0012_review"
down_revision: str | None = "0010_local_forge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "review_reports",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=True),
        sa.Column("step_name", sa.String(length=200), nullable=True),
        sa.Column("workflow_run_id", sa.Uuid(), nullable=True),
        sa.Column("pull_request_id", sa.Uuid(), nullable=True),
        sa.Column("commit_sha", sa.String(length=64), nullable=False),
        sa.Column("reviewer", sa.String(length=100), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("report", JsonType, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_review_reports_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["ci_cd_pipelines.id"],
            name=op.f("fk_review_reports_pipeline_id_ci_cd_pipelines"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workflow_run_id"],
            ["workflow_runs.id"],
            name=op.f("fk_review_reports_workflow_run_id_workflow_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["pull_request_id"],
            ["pull_requests.id"],
            name=op.f("fk_review_reports_pull_request_id_pull_requests"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_reports")),
    )
    op.create_index(
        "ix_review_reports_pipeline_id_step_name", "review_reports", ["pipeline_id", "step_name"], unique=False
    )
    op.create_table(
        "review_findings",
        sa.Column("report_id", sa.Uuid(), nullable=False),
        sa.Column("pull_request_id", sa.Uuid(), nullable=True),
        sa.Column("commit_sha", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("start_line", sa.Integer(), nullable=False),
        sa.Column("end_line", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("posted", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["review_reports.id"],
            name=op.f("fk_review_findings_report_id_review_reports"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["pull_request_id"],
            ["pull_requests.id"],
            name=op.f("fk_review_findings_pull_request_id_pull_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_findings")),
    )
    op.create_index(
        "ix_review_findings_pull_request_id_fingerprint",
        "review_findings",
        ["pull_request_id", "fingerprint"],
        unique=False,
    )
    op.create_index("ix_review_findings_report_id", "review_findings", ["report_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_review_findings_report_id", table_name="review_findings")
    op.drop_index("ix_review_findings_pull_request_id_fingerprint", table_name="review_findings")
    op.drop_table("review_findings")
    op.drop_index("ix_review_reports_pipeline_id_step_name", table_name="review_reports")
    op.drop_table("review_reports")
