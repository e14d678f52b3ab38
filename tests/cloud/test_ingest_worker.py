"""cloud.ingest.worker against a real Mosquitto (MQTT 5 shared subscriptions) and SQLite.

No wall-clock assertions: every wait polls a condition with a generous timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiomqtt
import pytest

from cloud.ingest import IngestWorker, Reason
from cloud.store import Store, upgrade_database
from protocol.messages import DeviceStatus, GatewayStatus, encode_message
from protocol.topics import alert_topic, device_status_topic, gateway_status_topic, window_topic
from protocol.window_payload import encode_window
from tests.cloud.conftest import T0_US, make_alert, make_window

WAIT_S = 30.0


async def until(cond: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = cond()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    return url


@contextlib.asynccontextmanager
async def running(worker: IngestWorker) -> AsyncIterator[IngestWorker]:
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.subscribed.wait(), WAIT_S)
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def make_worker(store, broker, group: str, name: str, **kw) -> IngestWorker:
    kw.setdefault("enforce_registry", True)
    return IngestWorker(store, hostname=broker.host, port=broker.port, group=group, client_id=f"{group}-{name}",
                        session_expiry_s=10, backoff_initial_s=0.1, backoff_max_s=1.0, **kw)


@contextlib.asynccontextmanager
async def publisher(broker, ident: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"{ident}-pub",
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        yield client


async def register(store: Store, patient: str, device: str) -> None:
    await store.add_patient(patient)
    await store.add_device(device, patient)


async def test_alerts_windows_and_status_are_stored_and_resends_deduplicated(mqtt_broker, db_url, unique_id) -> None:
    pat, dev, gw = f"{unique_id}p", f"{unique_id}d", f"{unique_id}g"
    async with Store(db_url) as store:
        await register(store, pat, dev)
        async with running(make_worker(store, mqtt_broker, unique_id, "w")) as w, publisher(mqtt_broker, unique_id) as pub:
            alert = make_alert(pat, device_id=dev)
            window = make_window(pat, device_id=dev)
            await pub.publish(alert_topic(pat), encode_message(alert), qos=1)
            await pub.publish(window_topic(pat), encode_window(window), qos=1)
            await pub.publish(gateway_status_topic(gw), encode_message(GatewayStatus(gw, T0_US, streams=1)), qos=1)
            battery = DeviceStatus(dev, T0_US, battery_pct=37, connected=True, lead_off=("V1",))
            await pub.publish(device_status_topic(dev), encode_message(battery), qos=1)
            await until(lambda: w.counters.stored == 4, "four messages stored")
            # the edge resends after a reconnect: same alert id, even with different text
            await pub.publish(alert_topic(pat), encode_message(dataclasses.replace(alert, message="again")), qos=1)
            await pub.publish(window_topic(pat), encode_window(window), qos=1)
            await until(lambda: w.counters.duplicates == 2, "two duplicates counted")
        assert (await store.get_alert(alert.alert_id)).alert == alert
        assert await store.load_window(window.window_id) == window
        assert (await store.latest_gateway_status(gw)).streams == 1
        assert await store.latest_device_status(dev) == battery
        assert (await store.count_alerts(), await store.count_windows()) == (1, 1)
        c = w.counters
        assert (c.received, c.alerts_stored, c.windows_stored, c.gateway_status_stored, c.device_status_stored) == (
            6, 1, 1, 1, 1)
        assert (c.rejected_total, c.store_errors, c.unacked) == (0, 0, 0)
        assert w.manual_ack is True


async def test_two_workers_in_one_share_group_split_the_alerts(mqtt_broker, db_url, unique_id) -> None:
    pat, dev, n = f"{unique_id}p", f"{unique_id}d", 200
    async with Store(db_url) as store_a, Store(db_url) as store_b:  # two workers = two engines, as two processes
        await register(store_a, pat, dev)
        wa = make_worker(store_a, mqtt_broker, unique_id, "a")
        wb = make_worker(store_b, mqtt_broker, unique_id, "b")
        async with running(wa), running(wb), publisher(mqtt_broker, unique_id) as pub:
            alerts = [make_alert(pat, device_id=dev, onset_us=T0_US + i) for i in range(n)]
            for alert in alerts:
                await pub.publish(alert_topic(pat), encode_message(alert), qos=1)
            await until(lambda: wa.counters.received + wb.counters.received >= n, f"{n} alerts received")
            await until(lambda: wa.counters.stored + wb.counters.stored == n, f"{n} alerts stored")
        print(f"\nsplit of {n} alerts: worker a {wa.counters.alerts_stored}, worker b {wb.counters.alerts_stored}")
        assert wa.counters.alerts_stored > 0 and wb.counters.alerts_stored > 0
        assert wa.counters.received + wb.counters.received == n  # each message went to one worker only
        assert wa.counters.duplicates + wb.counters.duplicates == 0
        assert await store_a.count_alerts() == n
        assert {a.alert.alert_id for a in await store_a.alerts_for_patient(pat)} == {a.alert_id for a in alerts}


def _bad_inputs(pat: str, dev: str, other_pat: str, other_dev: str) -> dict[str, tuple[str, bytes, Reason]]:
    alert = json.loads(encode_message(make_alert(pat, device_id=dev)))
    return {
        "malformed_json": (alert_topic(pat), b'{"alert_id": ', Reason.MALFORMED),
        "corrupt_window": (window_topic(pat), corrupt_window_for(pat, dev), Reason.MALFORMED),
        "unknown_schema_version": (alert_topic(pat), json.dumps(alert | {"schema_version": 7}).encode(),
                                   Reason.UNSUPPORTED_VERSION),
        "oversized": (alert_topic(pat), encode_message(make_alert(pat, device_id=dev, alert_type="x")).replace(
            b'"message":"x raised"', b'"message":"' + b"x" * 100_000 + b'"'), Reason.OVERSIZED),
        "unknown_device": (alert_topic(pat), encode_message(make_alert(pat, device_id=f"{dev}zz")),
                           Reason.UNKNOWN_DEVICE),
        # another patient's (registered) device publishes under this patient's topic ...
        "foreign_device_under_my_topic": (alert_topic(pat), encode_message(make_alert(pat, device_id=other_dev)),
                                          Reason.WRONG_PATIENT),
        # ... or publishes its own patient's alert under this patient's topic
        "payload_for_another_patient": (alert_topic(pat), encode_message(make_alert(other_pat, device_id=other_dev)),
                                        Reason.TOPIC_MISMATCH),
    }


def corrupt_window_for(pat: str, dev: str) -> bytes:
    data = bytearray(encode_window(make_window(pat, device_id=dev)))
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
    return bytes(data)


BAD_KINDS = list(_bad_inputs("p", "d", "q", "e"))


@pytest.mark.parametrize("kind", BAD_KINDS)
async def test_bad_input_is_rejected_counted_and_disturbs_nothing(mqtt_broker, db_url, unique_id, kind) -> None:
    pat, dev, other_pat, other_dev = f"{unique_id}p", f"{unique_id}d", f"{unique_id}q", f"{unique_id}e"
    topic, payload, reason = _bad_inputs(pat, dev, other_pat, other_dev)[kind]
    async with Store(db_url) as store:
        await register(store, pat, dev)
        await register(store, other_pat, other_dev)
        async with running(make_worker(store, mqtt_broker, unique_id, "w")) as w, publisher(mqtt_broker, unique_id) as pub:
            good = [make_alert(pat, device_id=dev, onset_us=T0_US + i) for i in range(2)]
            other = make_alert(other_pat, device_id=other_dev)
            await pub.publish(alert_topic(pat), encode_message(good[0]), qos=1)
            await pub.publish(topic, payload, qos=1)
            await pub.publish(alert_topic(pat), encode_message(good[1]), qos=1)
            await pub.publish(topic, payload, qos=1)  # the same bad message again: counted again
            await pub.publish(alert_topic(other_pat), encode_message(other), qos=1)  # another patient, unaffected
            # ``received`` counts a message when its handling starts; wait until all five are done
            await until(lambda: w.counters.alerts_stored + w.counters.rejected_total >= 5, "five messages handled")
        c = w.counters
        assert c.rejected[reason.value] == 2, c.as_dict()
        assert c.rejected_total == 2
        assert (c.alerts_stored, c.windows_stored, c.duplicates, c.store_errors) == (3, 0, 0, 0)
        assert await store.count_alerts() == 3 and await store.count_windows() == 0
        assert {a.alert.alert_id for a in await store.alerts_for_patient(pat)} == {good[0].alert_id, good[1].alert_id}
        assert [a.alert for a in await store.alerts_for_patient(other_pat)] == [other]


class FlakyStore:
    """A Store whose first ``failures`` alert writes fail as a database outage would."""

    def __init__(self, store: Store, failures: int) -> None:
        self._store, self.failures = store, failures

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    async def store_alert(self, alert):
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("database unavailable (injected)")
        return await self._store.store_alert(alert)


async def test_a_store_failure_is_not_acknowledged_and_the_broker_redelivers(mqtt_broker, db_url, unique_id) -> None:
    pat, dev = f"{unique_id}p", f"{unique_id}d"
    async with Store(db_url) as real:
        await register(real, pat, dev)
        store = FlakyStore(real, failures=2)
        worker = make_worker(store, mqtt_broker, unique_id, "w", store_retries=1, store_retry_s=0.01)
        async with running(worker) as w, publisher(mqtt_broker, unique_id) as pub:
            alert = make_alert(pat, device_id=dev)
            await pub.publish(alert_topic(pat), encode_message(alert), qos=1)
            # two failed attempts -> not acked -> reconnect -> the broker redelivers -> stored
            await until(lambda: w.counters.alerts_stored == 1, "the alert stored after redelivery")
        c = w.counters
        assert (c.store_errors, c.unacked) == (2, 1)
        assert c.connects >= 2 and c.connection_errors >= 1
        assert c.received == 2  # the first delivery and the redelivery
        assert await real.count_alerts() == 1


async def test_a_batch_stores_valid_messages_together_and_a_bad_one_falls_back_alone(db_url, unique_id) -> None:
    pat, dev = f"{unique_id}p", f"{unique_id}d"
    async with Store(db_url) as store:
        await register(store, pat, dev)
        worker = IngestWorker(store, client_id=f"{unique_id}-batch")
        alerts = [make_alert(pat, device_id=dev, onset_us=T0_US + i) for i in range(3)]
        window = make_window(pat, device_id=dev)
        # the protocol accepts this alert, the store refuses it (it clears an episode another device raised)
        await store.add_device(f"{dev}2", pat)
        odd = make_alert(pat, device_id=f"{dev}2", event="cleared", episode_id=alerts[0].alert_id)
        batch = [(alert_topic(pat), encode_message(a)) for a in alerts]
        batch += [(window_topic(pat), encode_window(window)), (alert_topic(pat), encode_message(alerts[1])),
                  (alert_topic(pat), b"{broken"), (device_status_topic(dev), encode_message(DeviceStatus(dev, 5))),
                  (alert_topic(pat), encode_message(odd))]
        outcomes = await worker.handle_batch(batch)
        assert outcomes == ["stored"] * 4 + ["duplicate", "malformed", "stored", "episode_owner"]
        assert await store.count_alerts() == 3 and await store.count_windows() == 1
        clean = await worker.handle_batch(batch[:4])        # the edge resends the whole batch
        assert clean == ["duplicate"] * 4
        c = worker.counters
        assert (c.received, c.alerts_stored, c.windows_stored, c.duplicates) == (12, 3, 1, 5)
        assert (c.rejected["malformed"], c.rejected["episode_owner"]) == (1, 1)


async def test_a_window_is_decoded_once_on_its_way_into_the_store(db_url, unique_id, monkeypatch) -> None:
    """The ingest validates a window payload by decoding it; the store then keeps that decoded window
    and the bytes as received, without decoding them again (one window, one decode)."""
    import cloud.ingest.validation
    import cloud.store.repositories.windows
    from protocol.window_payload import decode_window

    decodes: list[int] = []

    def counting_decode(data: bytes, *args, **kwargs):
        decodes.append(len(data))
        return decode_window(data, *args, **kwargs)

    monkeypatch.setattr(cloud.ingest.validation, "decode_window", counting_decode)
    monkeypatch.setattr(cloud.store.repositories.windows, "decode_window", counting_decode)
    pat, dev = f"{unique_id}p", f"{unique_id}d"
    async with Store(db_url) as store:
        await register(store, pat, dev)
        worker = IngestWorker(store, client_id=f"{unique_id}-once")
        one, two, three = (make_window(pat, device_id=dev, t0_us=T0_US + i * 10_000_000, seconds=1, seed=i)
                           for i in range(3))
        assert await worker.handle(window_topic(pat), encode_window(one)) == "stored"
        assert len(decodes) == 1
        batch = [(window_topic(pat), encode_window(w)) for w in (two, three)]
        assert await worker.handle_batch(batch) == ["stored", "stored"]
        assert len(decodes) == 3
        assert await store.window_payload(two.window_id) == batch[0][1]  # kept verbatim
        assert await store.load_window(three.window_id) == three
