"""The root of the edge gateway's own exceptions.

Every exception the edge raises on purpose derives from :class:`EdgeError` (as bleak's all derive
from ``BleakError``), so a caller can catch "anything the gateway reported" in one clause. Each
also keeps the built-in base it had (``ValueError`` for bad input, ``RuntimeError`` for a part that
cannot work), so existing ``except ValueError`` / ``except RuntimeError`` clauses still catch it.
"""

from __future__ import annotations

__all__ = ["EdgeError"]


class EdgeError(Exception):
    """Base class of the edge gateway's exceptions."""
