"""pipeline owner: the worker whose engine runs it, for the reaper's take-over

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ci_cd_pipelines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("worker_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ci_cd_pipelines", schema=None) as batch_op:
        batch_op.drop_column("worker_id")
