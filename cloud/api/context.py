"""What every route needs, kept on ``app.state.ctx``: settings, the store, accounts, metrics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from cloud.accounts import Accounts
from cloud.api.metrics import ApiMetrics
from cloud.config import CloudSettings
from cloud.store import Store


@dataclass
class ApiContext:
    settings: CloudSettings
    store: Store
    accounts: Accounts
    metrics: ApiMetrics
    ingest: Any = None
    """The in-process ingest worker, if this process runs one (for /healthz and /metrics)."""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the service shuts down: live-feed connections end so the server can stop."""
    extras: dict[str, Any] = field(default_factory=dict)
