"""Webhook signatures: HMAC-SHA256 over the timestamp and the raw body, so a receiver can tell the post
came from this service and is not a replay.

Each webhook post carries::

    X-Ecgstream-Timestamp: 1765170000                # Unix seconds when it was signed
    X-Ecgstream-Signature: sha256=<hex>              # HMAC-SHA256(secret, b"<timestamp>." + raw body)
    X-Ecgstream-Delivery: 42                         # the delivery id: the same on every retry

A receiver recomputes the HMAC with the shared secret over ``<timestamp>.`` followed by the body bytes
exactly as received, compares in constant time, refuses a timestamp more than a few minutes from its own
clock (:func:`verify`, 300 s by default), and treats a delivery id it has already handled as a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Ecgstream-Signature"
TIMESTAMP_HEADER = "X-Ecgstream-Timestamp"
DELIVERY_HEADER = "X-Ecgstream-Delivery"
SCHEME = "sha256="
DEFAULT_TOLERANCE_S = 300


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` signed at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret, str(int(timestamp)).encode("ascii") + b"." + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def verify(secret: bytes, body: bytes, timestamp: str | None, signature: str | None, *,
           now_s: float | None = None, tolerance_s: float = DEFAULT_TOLERANCE_S) -> bool:
    """Whether ``signature`` (the header's value) signs ``body`` at ``timestamp`` (the header's value) with
    ``secret``, and the timestamp is within ``tolerance_s`` of ``now_s`` (default: this clock)."""
    if not timestamp or not signature or not timestamp.strip().isdigit():
        return False
    ts = int(timestamp.strip())
    now = time.time() if now_s is None else now_s
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature.strip())


__all__ = ["DEFAULT_TOLERANCE_S", "DELIVERY_HEADER", "SCHEME", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "sign",
           "verify"]
