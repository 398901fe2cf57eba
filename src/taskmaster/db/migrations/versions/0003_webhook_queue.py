"""webhook processing queue, secret rotation, one live pipeline per trigger

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 02:17:24.492702
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from taskmaster.db.base import JsonType, UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ci_cd_pipelines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trigger_key", sa.String(length=700), nullable=True))
        batch_op.create_index(
            "uq_ci_cd_pipelines_live_trigger",
            ["project_id", "trigger_key"],
            unique=True,
            sqlite_where=sa.text("status IN ('pending', 'queued', 'running')"),
            postgresql_where=sa.text("status IN ('pending', 'queued', 'running')"),
        )

    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_secret_previous", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("webhook_secret_rotated_at", UtcDateTime(), nullable=True))

    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_attempt_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("result", JsonType, nullable=True))
        batch_op.create_index(
            "ix_webhook_deliveries_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )
    # Existing deliveries get an empty result before the column becomes required.
    op.execute("UPDATE webhook_deliveries SET result = '{}'")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.alter_column("result", existing_type=JsonType, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_status_next_attempt_at")
        batch_op.drop_column("result")
        batch_op.drop_column("next_attempt_at")

    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("webhook_secret_rotated_at")
        batch_op.drop_column("webhook_secret_previous")

    with op.batch_alter_table("ci_cd_pipelines", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_ci_cd_pipelines_live_trigger",
            sqlite_where=sa.text("status IN ('pending', 'queued', 'running')"),
            postgresql_where=sa.text("status IN ('pending', 'queued', 'running')"),
        )
        batch_op.drop_column("trigger_key")
