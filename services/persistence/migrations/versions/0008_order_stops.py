"""Orders say what they are: a stop's price and whether it triggered, an iceberg's display
quantity, a GTD or DAY order's expiry (microseconds since the epoch)

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
COLUMNS = (("stop_price", sa.BigInteger), ("triggered", sa.SmallInteger), ("display_quantity", sa.BigInteger),
           ("expire_time_us", sa.BigInteger))


def upgrade() -> None:
    # A database the models made (create_all, adopted by revision 0001) has them already.
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("orders")}
    for name, kind in COLUMNS:
        if name not in present:
            op.add_column("orders", sa.Column(name, kind(), nullable=False, server_default="0"))


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("orders", name)
