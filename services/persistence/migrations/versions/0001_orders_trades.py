"""orders and trades

Databases created before Alembic (SQLModel create_all) already have these tables:
they are adopted as they are.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_OPEN = sa.text("status IN (1, 2)")


def _big(name: str, **kwargs) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), nullable=False, **kwargs)


def _small(name: str) -> sa.Column:
    return sa.Column(name, sa.SmallInteger(), nullable=False)


def _time(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "orders" not in tables:
        op.create_table(
            "orders",
            sa.Column("order_id", sa.BigInteger(), autoincrement=False, nullable=False),
            _big("account_id"),
            sa.Column("client_order_id", sa.String(length=64), nullable=True),
            sa.Column("symbol", sa.String(length=12), nullable=False),
            _small("side"), _small("order_type"), _small("time_in_force"), _small("status"),
            _big("price"), _big("quantity"), _big("filled_quantity"), _big("leaves_quantity"),
            sa.Column("reason", sa.String(length=64), server_default="", nullable=False),
            _time("create_time"), _time("update_time"),
            sa.PrimaryKeyConstraint("order_id"),
            sa.UniqueConstraint("account_id", "client_order_id", name="uq_orders_account_client"),
        )
        op.create_index("ix_orders_account_order", "orders", ["account_id", "order_id"])
        op.create_index("ix_orders_open", "orders", ["symbol", "order_id"], postgresql_where=_OPEN,
                        sqlite_where=_OPEN)
    if "trades" not in tables:
        op.create_table(
            "trades",
            sa.Column("trade_id", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("symbol", sa.String(length=12), nullable=False),
            _big("price"), _big("quantity"), _big("maker_order_id"), _big("taker_order_id"),
            _big("maker_account_id"), _big("taker_account_id"), _small("aggressor_side"), _time("time"),
            sa.PrimaryKeyConstraint("trade_id"),
        )
        op.create_index("ix_trades_maker_order", "trades", ["maker_order_id"])
        op.create_index("ix_trades_taker_order", "trades", ["taker_order_id"])


def downgrade() -> None:
    op.drop_table("trades")
    op.drop_table("orders")
