"""Stop and stop-limit orders: their stop price, and whether they triggered

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database the models made (create_all, adopted by revision 0001) has them already.
    if "stop_price" in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("orders")}:
        return
    op.add_column("orders", sa.Column("stop_price", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("orders", sa.Column("triggered", sa.SmallInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("orders", "triggered")
    op.drop_column("orders", "stop_price")
