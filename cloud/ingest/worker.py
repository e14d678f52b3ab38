"""The cloud ingest worker: an MQTT 5 shared subscription into the store.

Several workers (processes, hosts) run with the same ``group`` and split the edge's traffic through
the broker's shared subscription (``$share/{group}/ecgstream/v1/patient/+/alert`` and friends, QoS 1).
The database de-duplicates by alert and window id (``INSERT … ON CONFLICT DO NOTHING``), so the
edge's resends and the broker's redeliveries leave exactly one row; a duplicate is counted, not an
error.

**Acknowledgement after storage.** aiomqtt 2.5 has no manual-ack option: paho-mqtt sends the PUBACK
of a QoS 1 message from inside its ``on_message`` callback, i.e. when aiomqtt puts the message on
its queue, *before* the application iterates to it, so a crash or a storage failure after that
would lose an acknowledged message. paho-mqtt ≥ 2.0 has ``manual_ack``; the worker turns it on on
aiomqtt's underlying paho client (``client._client``, before connecting) and sends the PUBACK itself
(``ack(mid, qos)``) only once the message is stored, found to be a duplicate, or rejected (a bad
message is counted and then acknowledged: redelivering it could never succeed). PUBACKs go out in
arrival order, as MQTT 5 (§4.6) requires.

**Batches.** Whatever has queued up while the last batch was being stored (up to ``max_batch``) is
handled as one batch: each message validated, each device looked up once, and the valid alerts and
windows written in one transaction (:meth:`cloud.store.Store.store_batch`), then all acknowledged.
One commit per batch rather than per message is what lets a worker keep up under load; under light
load a batch is one message and nothing waits. If the store refuses a batch as a whole (one item
fails the store's own checks, or the database errors), its messages go one by one as before.

**Decoded once.** :func:`cloud.ingest.validation.check_payload` decodes and validates each window
payload; the worker hands the store that :class:`~protocol.window_payload.EcgWindow` together with the
bytes as received (:class:`cloud.store.ReceivedWindow`), so the store indexes the decoded window and
keeps the bytes verbatim without decoding them a second time.

**Poison messages.** A message is never retried for a fault of its own: a failure that
:func:`cloud.ingest.failures.refused_by_data` blames on the message (the store's checks, a database
data or integrity error such as PostgreSQL refusing a NUL character) rejects it, counted per reason
(``episode_owner`` for an event naming another patient's or device's episode, ``malformed`` for the
store's schema checks, ``store_refused`` for the database), and acknowledges it. When a batch fails,
its messages are stored one by one, so one such message costs only itself: the others of its batch
are stored.

**Storage errors.** A store exception other than those (database down, lock timeout) is
counted in ``store_errors`` and logged, retried ``store_retries`` times with backoff, and if it still
fails the message is *not* acknowledged: the worker drops the connection and reconnects with the
same client id and ``clean_start=False``, and the broker redelivers every unacknowledged message of
the persistent session (``session_expiry_s``). So a message is only ever lost by the broker's own
session expiry, never by the worker.

**Receipts.** After a batch is committed (and before its PUBACKs) the worker tells each gateway what
became of its alerts and windows: :class:`cloud.ingest.receipts.ReceiptPublisher` publishes one
:class:`protocol.receipts.Receipt` per gateway per batch (stored, duplicate, or rejected with the
reason) on the gateway's receipt topic, QoS 1, on this worker's client, addressed by the MQTT 5
response topic and correlation data the edge's uplink put on each message. The edge deletes an
outbox entry only on its receipt and resends otherwise, so delivery never depends on the broker's
persistence or its shared-subscription sessions. A receipt that cannot be published ends the
connection like any MQTT error: the batch stays unacknowledged, the broker redelivers it, and the
redelivery's receipt says ``duplicate``.

**Auto-registration.** With ``auto_register`` (``ecgstream cloud run --auto-register``) a message
from a device the registry does not know registers it (and the patient its data names) and is then
stored like any other (:mod:`cloud.ingest.autoregister`); counted in ``auto_registered``.

**Reconnects.** Any MQTT error (broker restart, network) ends the connection; the worker reconnects
with exponential backoff (``backoff_initial_s`` doubling to ``backoff_max_s``, reset after a good
connection). Cancelling :meth:`IngestWorker.run` stops it cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from cloud.errors import CloudError
from cloud.ingest.autoregister import auto_register, needs_registration
from cloud.ingest.failures import refused_by_data
from cloud.ingest.receipts import ReceiptPublisher
from cloud.ingest.validation import Accepted, Kind, Reason, Rejected, check_payload, check_registry
from cloud.store.records import ReceivedWindow
from protocol.envelope import MAX_PAYLOAD_BYTES
from protocol.errors import OwnershipError, ProtocolError
from protocol.messages import Alert, DeviceStatus, GatewayStatus
from protocol.topics import Channel, Scope, shared_subscription, subscription
from protocol.window_payload import EcgWindow

log = logging.getLogger(__name__)

TOPIC_FILTERS = (
    subscription(Scope.PATIENT, Channel.ALERT),
    subscription(Scope.PATIENT, Channel.WINDOW),
    subscription(Scope.GATEWAY, Channel.STATUS),
    subscription(Scope.DEVICE, Channel.STATUS),
)
"""What the cloud ingests (each joined as a shared subscription of the worker's group)."""


@dataclass
class IngestCounters:
    """Everything one worker saw; ``received == stored + duplicates + stale_status + rejected_total``
    plus any message whose storage failed (``store_errors`` counts attempts, not messages)."""

    received: int = 0
    alerts_stored: int = 0
    windows_stored: int = 0
    gateway_status_stored: int = 0
    device_status_stored: int = 0
    duplicates: int = 0
    stale_status: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in Reason})
    store_errors: int = 0
    unacked: int = 0
    connects: int = 0
    connection_errors: int = 0
    auto_registered: int = 0
    """Devices (and their patients) this worker registered with ``auto_register`` on."""

    @property
    def stored(self) -> int:
        return self.alerts_stored + self.windows_stored + self.gateway_status_stored + self.device_status_stored

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received, "stored": self.stored, "alerts_stored": self.alerts_stored,
            "windows_stored": self.windows_stored, "gateway_status_stored": self.gateway_status_stored,
            "device_status_stored": self.device_status_stored,
            "duplicates": self.duplicates, "stale_status": self.stale_status, "rejected": dict(self.rejected),
            "rejected_total": self.rejected_total, "store_errors": self.store_errors, "unacked": self.unacked,
            "connects": self.connects, "connection_errors": self.connection_errors,
            "auto_registered": self.auto_registered,
        }


def _failed(code: object) -> bool:
    """A SUBACK reason code (paho ReasonCode, or an int granted QoS) that refuses the subscription."""
    value = getattr(code, "value", code)
    return not isinstance(value, int) or value >= 0x80


def _payload(message: aiomqtt.Message) -> bytes:
    return bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""


def _store_item(accepted: Accepted) -> Alert | ReceivedWindow:
    """What :meth:`cloud.store.Store.store_batch` takes: the alert, or the window already decoded and
    validated here with its payload as received (the store keeps the bytes and does not decode them again)."""
    message = accepted.message
    if isinstance(message, Alert):
        return message
    assert isinstance(message, EcgWindow)
    return ReceivedWindow(message, accepted.payload)


class _BatchRegistry:
    """The registry as one batch sees it: each device looked up once per batch."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._seen: dict[str, Any] = {}

    async def get_device(self, device_id: str) -> Any:
        if device_id not in self._seen:
            self._seen[device_id] = await self._store.get_device(device_id)
        return self._seen[device_id]

    def forget(self, device_id: str) -> None:
        """Look ``device_id`` up again next time (it was just registered)."""
        self._seen.pop(device_id, None)


class StoreFailure(CloudError):
    """Storing a valid message failed after the retries; it was not acknowledged."""


def _refusal(error: BaseException) -> Rejected:
    """The rejection for a storage failure that :func:`refused_by_data` blamed on the message."""
    if isinstance(error, OwnershipError):
        return Rejected(Reason.EPISODE_OWNER, str(error))
    if isinstance(error, ProtocolError):  # the store's own checks (episode event, 63-bit range)
        return Rejected(Reason.MALFORMED, str(error))
    detail = str(getattr(error, "orig", None) or error).strip().splitlines()
    return Rejected(Reason.STORE_REFUSED, f"{type(error).__name__}: {detail[0] if detail else ''}")


class IngestWorker:
    """One ingest worker. ``store`` is a :class:`cloud.store.Store` (or anything with its
    ``store_alert``, ``store_window``, ``upsert_gateway_status`` and ``get_device``)::

        async with Store(url) as store:
            await IngestWorker(store, hostname="broker", client_id="ingest-1").run()
    """

    def __init__(self, store: Any, *, hostname: str = "127.0.0.1", port: int = 1883, group: str = "cloud",
                 client_id: str, username: str | None = None, password: str | None = None,
                 tls_context: ssl.SSLContext | None = None, enforce_registry: bool = True,
                 max_payload_bytes: int = MAX_PAYLOAD_BYTES, session_expiry_s: int = 3600, keepalive_s: int = 30,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0, store_retries: int = 3,
                 store_retry_s: float = 0.2, max_batch: int = 64, auto_register: bool = False,
                 shared: bool = True) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.max_batch = max_batch
        self.store = store
        self.hostname, self.port = hostname, port
        self.group, self.client_id = group, client_id
        self.username, self.password, self.tls_context = username, password, tls_context
        self.enforce_registry = enforce_registry
        self.auto_register = auto_register
        """Register an unknown device (and the patient its data names) instead of refusing its messages
        (``cloud run --auto-register``; only with ``enforce_registry``; needs a :class:`cloud.store.Store`)."""
        self.max_payload_bytes = max_payload_bytes
        self.session_expiry_s = session_expiry_s
        self.keepalive_s = keepalive_s
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.store_retries, self.store_retry_s = store_retries, store_retry_s
        self.counters = IngestCounters()
        self.shared = shared
        """False: one worker with plain subscriptions over MQTT 3.1.1 (a broker without MQTT 5 shared
        subscriptions, such as the demo's embedded amqtt): run only one such worker, or each message is
        stored by every worker (harmless, de-duplicated, but wasted)."""
        self.subscriptions = tuple(shared_subscription(group, f) if shared else f for f in TOPIC_FILTERS)
        self.subscribed = asyncio.Event()
        """Set while the worker is connected and subscribed (tests and health checks wait on it)."""
        self.manual_ack: bool | None = None
        """True once the paho client confirmed manual acknowledgement (None before the first connect)."""
        self._logged: dict[str, int] = {}
        self.receipts = ReceiptPublisher()
        """Publishes each committed batch's receipts to the gateways that sent it (``receipts.counters``)."""

    # -- one message ------------------------------------------------------------------------------

    async def handle(self, topic: str, payload: bytes) -> str:
        """Validate and store one message; returns ``"stored"``, ``"duplicate"``, ``"stale"`` or the
        rejection reason's value. Raises :class:`StoreFailure` when a valid message could not be
        stored (or the registry could not be read) after the retries."""
        self.counters.received += 1
        result = await self._check(topic, payload, self.store)
        if isinstance(result, Rejected):
            return self._reject(topic, result)
        return await self._store_one(topic, result)

    async def _check(self, topic: str, payload: bytes, registry: Any) -> Accepted | Rejected:
        result: Accepted | Rejected = check_payload(topic, payload, max_bytes=self.max_payload_bytes)
        if isinstance(result, Accepted) and self.enforce_registry:
            accepted = result
            try:
                result = await self._with_retries(lambda: check_registry(accepted, registry), topic)
                if self.auto_register and await needs_registration(result, accepted, registry):
                    await self._with_retries(lambda: self._auto_register(accepted), topic)
                    forget = getattr(registry, "forget", None)
                    if forget is not None:
                        forget(accepted.message.device_id)  # type: ignore[union-attr]
                    result = await self._with_retries(lambda: check_registry(accepted, registry), topic)
            except StoreFailure:
                raise
            except Exception as exc:  # noqa: BLE001 - _with_retries only lets data refusals through
                return _refusal(exc)
        return result

    async def _auto_register(self, accepted: Accepted) -> None:
        """Register the sender of ``accepted`` (see :mod:`cloud.ingest.autoregister`); counted and logged."""
        made = await auto_register(self.store, accepted)
        if made:
            self.counters.auto_registered += 1
            message = accepted.message
            assert not isinstance(message, GatewayStatus)
            log.info("ingest %s: auto-registered device %r%s", self.client_id, message.device_id,
                     "" if isinstance(message, DeviceStatus) else f" for patient {message.patient_id!r}")

    async def _store_one(self, topic: str, result: Accepted) -> str:
        try:
            fresh = await self._with_retries(lambda: self._store(result), topic)
        except StoreFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - _with_retries only lets data refusals through
            return self._reject(topic, _refusal(exc))
        return self._count_stored(result, fresh)

    def _count_stored(self, result: Accepted, fresh: bool) -> str:
        if fresh:
            if result.kind is Kind.ALERT:
                self.counters.alerts_stored += 1
            elif result.kind is Kind.WINDOW:
                self.counters.windows_stored += 1
            elif result.kind is Kind.DEVICE_STATUS:
                self.counters.device_status_stored += 1
            else:
                self.counters.gateway_status_stored += 1
            return "stored"
        if result.kind in (Kind.GATEWAY_STATUS, Kind.DEVICE_STATUS):
            self.counters.stale_status += 1
            return "stale"
        self.counters.duplicates += 1
        return "duplicate"

    async def handle_batch(self, messages: list[tuple[str, bytes]]) -> list[str]:
        """Validate ``(topic, payload)`` messages and store the valid alerts and windows in one
        transaction (:meth:`cloud.store.Store.store_batch`); statuses, and every message of a batch
        the store refuses as a whole, go one by one through the same path as :meth:`handle`. Returns
        one outcome per message, in order. Raises :class:`StoreFailure` like :meth:`handle`; the
        caller then acknowledges none of the batch (the broker redelivers it, and the ids de-duplicate)."""
        registry = _BatchRegistry(self.store)
        checked: list[Accepted | Rejected] = []
        for topic, payload in messages:
            self.counters.received += 1
            checked.append(await self._check(topic, payload, registry))
        outcomes: list[str | None] = [None] * len(messages)
        bulk = [i for i, r in enumerate(checked) if isinstance(r, Accepted) and r.kind in (Kind.ALERT, Kind.WINDOW)]
        if len(bulk) > 1:
            items = [_store_item(checked[i]) for i in bulk]  # type: ignore[arg-type]
            try:
                fresh = await self.store.store_batch(items)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad item or a database error: one by one below
                log.info("ingest %s: a batch of %d was refused as a whole (%s: %s); storing one by one",
                         self.client_id, len(items), type(exc).__name__, exc)
            else:
                for i, new in zip(bulk, fresh, strict=True):
                    outcomes[i] = self._count_stored(checked[i], new)  # type: ignore[arg-type]
        for i, ((topic, _), result) in enumerate(zip(messages, checked, strict=True)):
            if outcomes[i] is not None:
                continue
            outcomes[i] = self._reject(topic, result) if isinstance(result, Rejected) else \
                await self._store_one(topic, result)
        return [o for o in outcomes if o is not None]

    async def _store(self, accepted: Accepted) -> bool:
        message = accepted.message
        if isinstance(message, Alert):
            return await self.store.store_alert(message)
        if isinstance(message, EcgWindow):
            return await self.store.store_window(_store_item(accepted))  # decoded once, stored verbatim
        if isinstance(message, DeviceStatus):
            return await self.store.upsert_device_status(message)
        assert isinstance(message, GatewayStatus)
        fresh = await self.store.upsert_gateway_status(message)
        vitals = getattr(self.store, "vitals", None)   # the patient timeline's per-minute trend
        if fresh and vitals is not None:   # a replayed or redelivered status is not folded in twice
            await vitals.record(message)
        return fresh

    async def _with_retries(self, call: Any, topic: str) -> Any:
        delay = self.store_retry_s
        for attempt in range(self.store_retries + 1):
            try:
                return await call()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database errors of any driver
                if refused_by_data(exc):
                    raise  # the message's own fault: retrying cannot help (the caller rejects it)
                self.counters.store_errors += 1
                log.error("ingest %s: storing a message from %s failed (attempt %d of %d): %s: %s", self.client_id,
                          topic, attempt + 1, self.store_retries + 1, type(exc).__name__, exc)
                if attempt == self.store_retries:
                    raise StoreFailure(f"{topic}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)
        raise AssertionError("unreachable")

    def _reject(self, topic: str, rejected: Rejected) -> str:
        reason = rejected.reason.value
        self.counters.rejected[reason] = self.counters.rejected.get(reason, 0) + 1
        n = self._logged[reason] = self._logged.get(reason, 0) + 1
        if n <= 10 or n % 1000 == 0:  # every reason is logged, a flood of one reason is not
            log.warning("ingest %s: rejected a message on %s: %s (%s) [%d so far]", self.client_id, topic, reason,
                        rejected.detail, self.counters.rejected[reason])
        return reason

    # -- the MQTT loop ----------------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        if self.shared:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry_s
            client = aiomqtt.Client(
                self.hostname, self.port, username=self.username, password=self.password, identifier=self.client_id,
                protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props, keepalive=self.keepalive_s,
                tls_context=self.tls_context,
            )
        else:  # plain subscription: MQTT 3.1.1, a persistent session (clean_session off)
            client = aiomqtt.Client(
                self.hostname, self.port, username=self.username, password=self.password, identifier=self.client_id,
                protocol=aiomqtt.ProtocolVersion.V311, clean_session=False, keepalive=self.keepalive_s,
                tls_context=self.tls_context,
            )
        paho = getattr(client, "_client", None)
        if paho is not None and hasattr(paho, "manual_ack_set") and hasattr(paho, "ack"):
            paho.manual_ack_set(True)
            self.manual_ack = True
        else:  # pragma: no cover - an aiomqtt/paho without it: acks happen on receipt, before storage
            self.manual_ack = False
            log.warning("ingest %s: this paho-mqtt has no manual_ack; QoS 1 messages are acknowledged on receipt, "
                        "before they are stored", self.client_id)
        return client

    def _ack(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        if self.manual_ack and message.qos > 0:
            client._client.ack(message.mid, message.qos)  # noqa: SLF001 - see the module docstring

    async def run_once(self) -> None:
        """One connection: connect, subscribe, handle messages until the connection ends (raises
        aiomqtt.MqttError) or a message cannot be stored (raises StoreFailure)."""
        client = self._client()
        async with client:
            self.counters.connects += 1
            # retainHandling 2: no retained messages replayed at each (re)subscribe (a device's last will, say):
            # ingest is a stream of events; the next status report brings the current state.
            opts = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
            # MQTT 3.1.1 has no subscribe options: retained messages are replayed there (stored once, by id)
            if self.shared:
                codes = await client.subscribe([(s, opts) for s in self.subscriptions])
            else:
                codes = await client.subscribe([(s, 1) for s in self.subscriptions])
            bad = [(s, str(c)) for s, c in zip(self.subscriptions, codes, strict=False) if _failed(c)]
            if bad:
                raise aiomqtt.MqttError(f"the broker refused the subscriptions {bad}")
            log.info("ingest %s: subscribed to %s", self.client_id, ", ".join(self.subscriptions))
            self.subscribed.set()
            try:
                async for message in client.messages:
                    batch = [message]
                    while len(batch) < self.max_batch and len(client.messages):
                        batch.append(await anext(client.messages))
                    try:
                        outcomes = await self.handle_batch([(str(m.topic), _payload(m)) for m in batch])
                    except StoreFailure:
                        self.counters.unacked += len(batch)
                        raise  # leave them unacknowledged; the reconnect makes the broker redeliver them
                    await self.receipts.publish_batch(client, batch, outcomes)  # committed: tell the gateways
                    for m in batch:
                        self._ack(client, m)
            finally:
                self.subscribed.clear()

    async def run(self) -> None:
        """Run until cancelled, reconnecting with exponential backoff."""
        delay = self.backoff_initial_s
        while True:
            connects = self.counters.connects
            try:
                await self.run_once()
            except (aiomqtt.MqttError, StoreFailure) as exc:
                self.counters.connection_errors += 1
                log.warning("ingest %s: connection ended (%s: %s); reconnecting in %.1f s", self.client_id,
                            type(exc).__name__, exc, delay)
            if self.counters.connects > connects:
                delay = self.backoff_initial_s  # a connection worked: start the backoff again
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max_s)


__all__ = ["TOPIC_FILTERS", "IngestCounters", "IngestWorker", "StoreFailure"]
