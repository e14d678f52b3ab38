"""The 4-byte envelope in front of every binary MQTT payload.

``b"ES"`` magic, one byte payload kind, one byte schema version. A reader
checks all three before it looks at the body, so a payload of the wrong kind
or an unknown version is rejected with a clear error instead of misparsed.
"""

from __future__ import annotations

from enum import IntEnum

from protocol.errors import FrameError, UnsupportedVersionError

MAGIC = b"ES"
ENVELOPE_SIZE = 4
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024
"""Largest binary payload any decoder accepts (bigger ones are rejected unread)."""


class PayloadKind(IntEnum):
    SAMPLES = 1
    WINDOW = 2
    LIVE = 3


def wrap(kind: PayloadKind, version: int, body: bytes) -> bytes:
    return MAGIC + bytes([int(kind), version]) + body


def unwrap(data: bytes | bytearray | memoryview, kind: PayloadKind, supported: tuple[int, ...]) -> tuple[int, memoryview]:
    """Check the envelope; return (schema version, body). Raises ProtocolError subclasses only."""
    try:
        buf = memoryview(data).cast("B")
    except TypeError as exc:
        raise FrameError(f"payload must be bytes-like, got {type(data).__name__}") from exc
    if len(buf) > MAX_PAYLOAD_BYTES:
        raise FrameError(f"payload of {len(buf)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    if len(buf) < ENVELOPE_SIZE or bytes(buf[:2]) != MAGIC:
        raise FrameError("payload does not start with the ecgstream envelope (b'ES')")
    if buf[2] != kind:
        try:
            found = PayloadKind(buf[2]).name.lower()
        except ValueError:
            found = f"unknown kind {buf[2]}"
        raise FrameError(f"expected a {kind.name.lower()} payload, got {found}")
    version = buf[3]
    if version not in supported:
        raise UnsupportedVersionError(f"{kind.name.lower()} payload schema", version, supported)
    return version, buf[ENVELOPE_SIZE:]
