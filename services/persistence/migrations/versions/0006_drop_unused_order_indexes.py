"""Drop the orders indexes that only removed RPCs read (GetOrderByClientId, ListOpenOrders)

Each index costs every batch: the order's insert, and each update of its state (an
update that changes the status cannot be a HOT update while a partial index filters on
it). Measured on PostgreSQL with the matching shard's statement, 100-command batches:
32 to 21 us of backend CPU per new order.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OPEN = sa.text("status IN (1, 2)")


def upgrade() -> None:
    present = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("orders")}
    for name in ("ix_orders_account_client", "ix_orders_open"):
        if name in present:
            op.drop_index(name, table_name="orders")


def downgrade() -> None:
    op.create_index("ix_orders_account_client", "orders", ["account_id", "client_order_id"])
    op.create_index("ix_orders_open", "orders", ["symbol", "order_id"], postgresql_where=_OPEN, sqlite_where=_OPEN)
