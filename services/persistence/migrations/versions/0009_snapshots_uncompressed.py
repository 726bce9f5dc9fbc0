"""Snapshot chunks are stored uncompressed (PostgreSQL: STORAGE EXTERNAL)

A shard snapshot is mostly idempotency keys (128-bit digests, order ids, fingerprints) that
PostgreSQL's pglz shrinks by about a fifth, at three times the backend CPU of storing the
bytes as they are: 0.35-0.39 s against 0.12-0.20 s for a 16 MB snapshot (300,000 keys), a
snapshot taken every 100,000 commands per shard while the load runs. Rows already stored
stay as they are; other databases store bytes uncompressed anyway.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _set_storage(storage: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE snapshots ALTER COLUMN data SET STORAGE {storage}")


def upgrade() -> None:
    _set_storage("EXTERNAL")


def downgrade() -> None:
    _set_storage("EXTENDED")
