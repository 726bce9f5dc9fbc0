"""Drop client_order_ids: the idempotency keys live with each matching shard

The matching shard that owns a symbol checks each (account, symbol, client_order_id)
itself and makes the key durable in its journal, in the same commit as the order
(services/matching/client_ids.py); the persistence service's ClaimClientOrderIds RPCs,
the only writers of this table, were left to tests and are removed.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "client_order_ids" in sa.inspect(op.get_bind()).get_table_names():
        op.drop_table("client_order_ids")


def downgrade() -> None:
    op.create_table(
        "client_order_ids",
        sa.Column("account_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_hash", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("account_id", "client_order_id"),
    )
