"""The alert service's HTTP API (FastAPI): :func:`create_app` over an open :class:`cloud.store.Store`.

The endpoint reference is ``docs/api.md``; errors are ``{"error", "detail"}`` JSON (:mod:`.errors`);
the live feed is Server-Sent Events (:mod:`.feed`).
"""

from cloud.api.app import create_app, make_accounts
from cloud.api.context import ApiContext
from cloud.api.errors import ApiError
from cloud.api.metrics import ApiMetrics

__all__ = ["ApiContext", "ApiError", "ApiMetrics", "create_app", "make_accounts"]
