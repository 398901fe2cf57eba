"""delivery per project: a delivery is kept once per project of its repository (two projects may share one)

Revision ID: 0007_delivery_per_project
Revises: 0006_check_run_ids
Create Date: 2026-12-04 22:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_delivery_per_project"
down_revision: str | None = "0006_check_run_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_webhook_deliveries_provider_hook_id_delivery_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_webhook_deliveries_provider_hook_id_delivery_id_project_id",
            ["provider", "hook_id", "delivery_id", "project_id"],
        )


def downgrade() -> None:
    # A delivery stored for two projects keeps the oldest row: the old key allows one.
    op.execute(
        "DELETE FROM webhook_deliveries WHERE id IN (SELECT later.id FROM webhook_deliveries later "
        "JOIN webhook_deliveries earlier ON later.provider = earlier.provider AND later.hook_id = earlier.hook_id "
        "AND later.delivery_id = earlier.delivery_id AND later.id > earlier.id)"
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_webhook_deliveries_provider_hook_id_delivery_id_project_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_webhook_deliveries_provider_hook_id_delivery_id", ["provider", "hook_id", "delivery_id"]
        )
