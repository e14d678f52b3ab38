"""The MQTT broker settings every tier shares, and the port rule: 1883, or 8883 under TLS.

``host = "embedded"`` means an in-process broker (the edge's zero-set-up default); anything else is
a real one. The password is a secret: only the environment may set it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import ConfigDict, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import ArgsKwargs

from settings.fields import SECRET, Bool, FilePath, TcpPort, Text, problem

EMBEDDED = "embedded"
"""Broker host meaning: an in-process broker (zero set-up; MQTT 3.1.1 only)."""
MQTT_PORT = 1883
MQTTS_PORT = 8883

SECTION = ConfigDict(extra="forbid")
"""The pydantic config of every settings table: unknown keys are refused."""


def default_port(tls: bool) -> int:
    """The broker port when none is given: 8883 under TLS, else 1883."""
    return MQTTS_PORT if tls else MQTT_PORT


@dataclass(frozen=True, config=SECTION)
class BrokerConfig:
    """An MQTT broker: where it is, who we are to it, and whether TLS protects the connection."""

    host: Text = EMBEDDED
    port: TcpPort = MQTT_PORT
    """1883 by default, 8883 when ``tls`` is on and no port is given."""
    username: Text | None = None
    password: Text | None = dataclasses.field(default=None, repr=False, metadata=SECRET)
    tls: Bool = False
    cafile: FilePath | None = None
    """CA bundle for TLS (default: the system's)."""
    client_id: Text | None = None
    """MQTT client id (default: the tier's own); keep it stable across restarts for a persistent session."""

    @property
    def embedded(self) -> bool:
        """Whether this is the in-process broker."""
        return self.host == EMBEDDED

    @model_validator(mode="before")
    @classmethod
    def _tls_port(cls, data: Any) -> Any:
        """No port given and TLS on: 8883."""
        if isinstance(data, ArgsKwargs) and not data.args and data.kwargs is not None:
            kwargs = data.kwargs
            if kwargs.get("tls") is True and "port" not in kwargs:
                return ArgsKwargs((), {**kwargs, "port": MQTTS_PORT})
        elif isinstance(data, dict) and data.get("tls") is True and "port" not in data:
            return {**data, "port": MQTTS_PORT}
        return data

    @model_validator(mode="after")
    def _check(self) -> BrokerConfig:
        if self.embedded:
            used = [k for k in ("tls", "username", "password", "cafile") if getattr(self, k)]
            if used:
                raise problem("tls, username, password and cafile need a real broker (host is 'embedded')", used[0])
        if self.cafile is not None and not self.tls:
            raise problem("cafile needs tls = true", "cafile")
        return self
