"""local forge: issues, marked comments, commit statuses, check runs and reviews of local-path projects

Revision ID: 0010_local_forge
Revises: 0009_ai_calls
Create Date: 2026-12-05 01:02:35.635803
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from taskmaster.db.base import JsonType, UtcDateTime

revision: str = "0010_local_forge"
down_revision: str | None = "0009_ai_calls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pull_requests") as batch:
        batch.add_column(sa.Column("body", sa.Text(), nullable=True))
        batch.add_column(sa.Column("merge_commit_sha", sa.String(length=64), nullable=True))

    op.create_table(
        "local_check_runs",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("head_sha", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("conclusion", sa.String(length=20), nullable=True),
        sa.Column("title", sa.String(length=1000), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("details_url", sa.String(length=1000), nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("annotations", JsonType, nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("completed_at", UtcDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_local_check_runs_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_check_runs")),
    )
    with op.batch_alter_table("local_check_runs", schema=None) as batch_op:
        batch_op.create_index("ix_local_check_runs_project_id_head_sha", ["project_id", "head_sha"], unique=False)

    op.create_table(
        "local_comments",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("marker", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_local_comments_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_comments")),
        sa.UniqueConstraint("project_id", "number", "marker", name=op.f("uq_local_comments_project_id_number_marker")),
    )
    op.create_table(
        "local_commit_statuses",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("context", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("target_url", sa.String(length=1000), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_local_commit_statuses_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_commit_statuses")),
        sa.UniqueConstraint(
            "project_id", "sha", "context", name=op.f("uq_local_commit_statuses_project_id_sha_context")
        ),
    )
    op.create_table(
        "local_issues",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=1000), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("labels", JsonType, nullable=False),
        sa.Column("author", sa.String(length=200), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_local_issues_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_issues")),
        sa.UniqueConstraint("project_id", "number", name=op.f("uq_local_issues_project_id_number")),
    )
    op.create_table(
        "local_reviews",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("commit_sha", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("comments", JsonType, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_local_reviews_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_reviews")),
    )
    with op.batch_alter_table("local_reviews", schema=None) as batch_op:
        batch_op.create_index("ix_local_reviews_project_id_number", ["project_id", "number"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("local_reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_local_reviews_project_id_number")

    op.drop_table("local_reviews")
    op.drop_table("local_issues")
    op.drop_table("local_commit_statuses")
    op.drop_table("local_comments")
    with op.batch_alter_table("local_check_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_local_check_runs_project_id_head_sha")

    op.drop_table("local_check_runs")
    with op.batch_alter_table("pull_requests") as batch:
        batch.drop_column("merge_commit_sha")
        batch.drop_column("body")
