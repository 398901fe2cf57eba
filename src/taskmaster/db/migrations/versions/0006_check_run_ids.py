"""check run ids: the forge's check run of a pipeline, kept in the database instead of one worker's memory

Revision ID: 0006_check_run_ids
Revises: 0005_workflow_runs
Create Date: 2026-12-04 22:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_check_run_ids"
down_revision: str | None = "0005_workflow_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ci_cd_pipelines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("check_run_id", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ci_cd_pipelines", schema=None) as batch_op:
        batch_op.drop_column("check_run_id")
