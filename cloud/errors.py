"""The cloud tier's exception root.

Every exception the cloud raises on purpose derives from :class:`CloudError`, so a caller (the
service's supervisor, the API's error handlers) can tell "the cloud refused or could not do this"
from a bug with one ``except CloudError``. Each keeps the builtin base its callers already catch
(``LookupError``, ``ValueError``), so nothing that caught those before needs to change.
"""

from __future__ import annotations


class CloudError(Exception):
    """Root of the cloud tier's own exceptions."""


class NotFound(CloudError, LookupError):
    """No stored row with that id (alert, episode, window, patient, device, user)."""


__all__ = ["CloudError", "NotFound"]
