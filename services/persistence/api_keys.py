"""API keys in database 0, run on a worker thread per call (see models.ApiKeyRecord).

Each change takes the next revision while holding the table in EXCLUSIVE mode (reads go
on; other changes wait): revisions then commit in increasing order, so "every change
after revision R" is a complete answer. Changes are operator actions, seldom enough
that serialising them costs nothing.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy import exc

from services.common.api_keys import key_hash, key_id_of
from services.persistence.models import API_KEYS, Row
from services.persistence.reads import utc
from services.persistence.shards import Shard, make_engine


class KeyExists(Exception):
    pass


def _row(values) -> Row:
    row = dict(values._mapping)
    for column in ("create_time", "revoke_time"):
        if row[column] is not None:
            row[column] = utc(row[column])
    return row


def _next_revision(conn) -> int:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("LOCK TABLE api_keys IN EXCLUSIVE MODE"))
    return conn.execute(sa.select(sa.func.coalesce(sa.func.max(API_KEYS.c.revision), 0))).scalar_one() + 1


def insert_key(shard: Shard, key_hash: bytes, account_id: int, label: str, now: datetime) -> Row:
    """Stores a key; KeyExists if its hash is stored already."""
    try:
        with shard.engine.begin() as conn:
            row = {"key_id": key_id_of(key_hash), "key_hash": key_hash, "account_id": account_id,
                   "label": label, "create_time": now, "revoke_time": None, "revision": _next_revision(conn)}
            conn.execute(API_KEYS.insert().values(**row))
            return row
    except exc.IntegrityError as e:
        raise KeyExists(key_id_of(key_hash)) from e


def revoke_key(shard: Shard, key_id: str, now: datetime) -> Row | None:
    """Revokes a key (a new revision, unless it was revoked already); None if unknown."""
    with shard.engine.begin() as conn:
        revision = _next_revision(conn)
        conn.execute(API_KEYS.update()
                     .where(API_KEYS.c.key_id == key_id, API_KEYS.c.revoke_time.is_(None))
                     .values(revoke_time=now, revision=revision))
        found = conn.execute(sa.select(API_KEYS).where(API_KEYS.c.key_id == key_id)).first()
        return None if found is None else _row(found)


def keys_after(shard: Shard, after_revision: int, limit: int) -> list[Row]:
    with shard.engine.connect() as conn:
        return [_row(v) for v in conn.execute(
            sa.select(API_KEYS).where(API_KEYS.c.revision > after_revision)
            .order_by(API_KEYS.c.revision).limit(limit))]


def seed_keys(url: str, keys: dict[str, int], label: str) -> None:
    """Stores the given keys (text -> account) unless stored already: the local stack's
    demo keys. Operators create keys with `python -m infra.admin keys create`."""
    engine = make_engine(url, pool_size=1, connect_timeout=5.0)
    try:
        shard = Shard(0, engine)
        now = datetime.now(timezone.utc)
        for key, account in keys.items():
            try:
                insert_key(shard, key_hash(key), account, label, now)
            except KeyExists:
                pass
    finally:
        engine.dispose()
