"""The one exception a settings problem raises: a :class:`ValueError` whose text is one line."""

from __future__ import annotations


class SettingsError(ValueError):
    """Settings are missing, unreadable or invalid; the message is one line naming the source, table and key.

    Each tier raises its own subclass (``edge.config.ConfigError``, ``cloud.config.ConfigError``) so that
    callers keep catching what they caught before.
    """
