"""a fingerprint of the request that claimed each idempotency key

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("client_order_ids", sa.Column("request_hash", sa.BigInteger(), nullable=False,
                                                server_default="0"))


def downgrade() -> None:
    op.drop_column("client_order_ids", "request_hash")
