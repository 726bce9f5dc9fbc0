"""journal, snapshots and idempotency keys (issue #4: durability, sharding, recovery)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _time(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _shard() -> sa.Column:
    return sa.Column("matching_shard", sa.SmallInteger(), autoincrement=False, nullable=False)


def _sequence() -> sa.Column:
    return sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False)


def upgrade() -> None:
    op.create_table(
        "journal",
        _shard(), _sequence(),
        sa.Column("command", sa.LargeBinary(), nullable=False),
        _time("time"),
        sa.PrimaryKeyConstraint("matching_shard", "sequence"),
    )
    op.create_table(
        "snapshots",
        _shard(), _sequence(),
        sa.Column("chunk_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("matching_shard", "sequence", "chunk_index"),
    )
    op.create_table(
        "snapshot_heads",
        _shard(), _sequence(),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        _time("time"),
        sa.PrimaryKeyConstraint("matching_shard", "sequence"),
    )
    op.create_table(
        "client_order_ids",
        sa.Column("account_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        _time("time"),
        sa.PrimaryKeyConstraint("account_id", "client_order_id"),
    )


def downgrade() -> None:
    for table in ("client_order_ids", "snapshot_heads", "snapshots", "journal"):
        op.drop_table(table)
