"""client_order_id names an order per (account, symbol) within the shard's key window:
the orders table no longer holds it unique per account, only indexes it for lookups

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted from create_all (0001) may have the new shape already.
    inspector = sa.inspect(op.get_bind())
    if any(c["name"] == "uq_orders_account_client" for c in inspector.get_unique_constraints("orders")):
        with op.batch_alter_table("orders") as batch:  # batch: SQLite cannot drop a constraint in place
            batch.drop_constraint("uq_orders_account_client", type_="unique")
    if not any(i["name"] == "ix_orders_account_client" for i in inspector.get_indexes("orders")):
        op.create_index("ix_orders_account_client", "orders", ["account_id", "client_order_id"])


def downgrade() -> None:
    op.drop_index("ix_orders_account_client", table_name="orders")
    with op.batch_alter_table("orders") as batch:
        batch.create_unique_constraint("uq_orders_account_client", ["account_id", "client_order_id"])
