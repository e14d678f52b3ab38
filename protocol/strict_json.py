"""Strict JSON for the protocol's JSON messages (alerts, statuses, receipts, alarm acks).

Python's ``json.loads`` accepts what other parsers refuse or read differently: ``NaN`` and
``Infinity``, numbers that overflow to infinity (``1e999``) and duplicate keys (the last one wins).
A receiver must never store or act on such a message, so :func:`loads_strict` refuses all of them,
and any input that is too large, not UTF-8 or not JSON, with a one-line :class:`SchemaError` that
names the kind of message.
"""

from __future__ import annotations

import json
import math
from typing import Any

from protocol.errors import SchemaError


def loads_strict(data: bytes | bytearray | memoryview | str, *, what: str, max_bytes: int) -> Any:
    """Parse ``data`` (at most ``max_bytes`` when bytes) as strict JSON; ``what`` names the message in
    errors ("alert", "receipt", …). Raises :class:`SchemaError` only."""
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) > max_bytes:
            raise SchemaError(f"{what} of {len(data)} bytes exceeds the {max_bytes}-byte limit")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise SchemaError(f"{what} is not UTF-8") from None
    elif isinstance(data, str):
        text = data
    else:
        raise SchemaError(f"{what} must be bytes or str, got {type(data).__name__}")

    def refuse_constant(name: str) -> Any:
        raise SchemaError(f"{what} is not strict JSON: {name} is not a number JSON allows")

    def finite_float(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):
            raise SchemaError(f"{what} is not strict JSON: {number[:20]!r} overflows to infinity")
        return value

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            keys = [k for k, _ in pairs]
            duplicate = next(k for i, k in enumerate(keys) if k in keys[:i])
            raise SchemaError(f"{what} has the key {duplicate!r} twice")
        return obj

    try:
        return json.loads(text, parse_constant=refuse_constant, parse_float=finite_float,
                          object_pairs_hook=unique_keys)
    except SchemaError:
        raise
    except (ValueError, RecursionError) as exc:
        raise SchemaError(f"{what} is not JSON: {exc}") from None
