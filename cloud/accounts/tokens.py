"""Session tokens: 256 random bits, URL-safe; the database stores only their SHA-256.

A stolen database therefore gives no usable token. SHA-256 (not argon2) is right here: the token has
256 bits of entropy, so there is nothing to brute-force, and every API request checks one.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token (64 characters, the ``sessions.token_hash`` key)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
