"""The one way a client builds its TLS context for a broker: the system's CAs, or the given bundle."""

from __future__ import annotations

import os
import ssl
from typing import Protocol


class TlsTarget(Protocol):
    """Anything that says whether to use TLS and which CA bundle (a :class:`~settings.broker.BrokerConfig`)."""

    @property
    def tls(self) -> bool: ...

    @property
    def cafile(self) -> str | os.PathLike[str] | None: ...


def client_tls_context(broker: TlsTarget) -> ssl.SSLContext | None:
    """A verifying client context when ``broker.tls`` (CAs from ``broker.cafile``, default the system's); else None."""
    if not broker.tls:
        return None
    return ssl.create_default_context(cafile=os.fspath(broker.cafile) if broker.cafile is not None else None)
