"""The protocol's exception tree.

Every decoder in :mod:`protocol` raises only :class:`ProtocolError` (or a
subclass) on bad input, whatever the bytes are, so a caller handling one
device's stream can catch exactly that and carry on with the others.
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """Base class: input that does not follow the ecgstream wire contract."""


class FrameError(ProtocolError):
    """A frame or binary payload is truncated, oversized or internally inconsistent."""


class IntegrityError(FrameError):
    """A frame's integrity check (CRC) does not match its contents."""


class UnsupportedVersionError(ProtocolError):
    """A frame or payload declares a version this build does not speak."""

    def __init__(self, what: str, version: int, supported: tuple[int, ...]) -> None:
        self.what = what
        self.version = version
        self.supported = supported
        listed = ", ".join(str(v) for v in supported)
        super().__init__(f"{what} version {version} is not supported (this build speaks {listed})")


class SchemaError(ProtocolError):
    """A payload parses but its fields break the schema (missing, wrong type, out of range)."""


class TopicError(ProtocolError):
    """An MQTT topic does not follow the ecgstream topic scheme."""


class OwnershipError(SchemaError):
    """A message names something that belongs to another sender: an alert event naming an episode
    raised for another patient or by another device."""
