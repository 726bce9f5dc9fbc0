"""API keys: what a key looks like, and the one-way hash under which it is stored.

A key is 32 random bytes (URL-safe text with a `bk_` prefix). Only its SHA-256 is
stored and sent between processes; a slow password hash buys nothing for a secret with
256 bits of entropy, and the hash is computed on every call. The key_id, the public
handle an operator lists and revokes by, is derived from the hash, so whoever holds a
key can name it without the database.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "bk_"


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_id_of(hashed: bytes) -> str:
    return hashed[:8].hex()
