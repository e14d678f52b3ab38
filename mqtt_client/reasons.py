"""A PUBACK's reason code: kept by :class:`ReasonClient`, named by :func:`reason_name` (package docstring)."""

from __future__ import annotations

import asyncio

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


def reason_name(code: int) -> str:
    """A PUBACK reason code as a label: ``not_authorized`` for 0x87, ``0x99`` when paho has no name."""
    try:
        name = ReasonCode(PacketTypes.PUBACK, identifier=code).getName()
    except Exception:  # noqa: BLE001 - paho raises a bare Exception for an unknown code
        return f"0x{code:02x}"
    return "_".join(name.lower().replace("-", " ").split())


class ReasonClient(aiomqtt.Client):
    """aiomqtt's client, keeping the reason code of each PUBACK (aiomqtt 2.5 drops it)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._reasons: dict[int, int] = {}

    def _on_publish(self, client: paho.Client, userdata: object, mid: int, reason_code: ReasonCode,
                    properties: Properties) -> None:
        self._reasons[mid] = int(getattr(reason_code, "value", 0) or 0)
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_with_reason(self, topic: str, payload: bytes, *, qos: int = 1,
                                  properties: Properties | None = None, timeout: float) -> int:
        """Publish and return the broker's reason code (0 success; >= 0x80 refused; 0 for QoS 0).
        Raises :class:`aiomqtt.MqttError` as :meth:`aiomqtt.Client.publish` does."""
        info = self._client.publish(topic, payload, qos, False, properties)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if not info.is_published():
            confirmation = asyncio.Event()
            with self._pending_call(info.mid, confirmation, self._pending_publishes):
                await self._wait_for(confirmation.wait(), timeout=timeout)
        return self._reasons.pop(info.mid, 0)
