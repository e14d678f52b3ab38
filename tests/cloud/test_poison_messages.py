"""No single message stops the ward: poison messages against the real Mosquitto, SQLite and PostgreSQL.

A message the protocol or the database refuses is rejected, counted per reason (exported on the
cloud's /metrics) and acknowledged, so the other patients' alerts keep flowing; a database outage is
never acknowledged. No wall-clock assertions: every wait polls a condition.
"""

from __future__ import annotations

import json

from sqlalchemy import text

from cloud.api.metrics import ApiMetrics
from cloud.ingest import IngestWorker, Reason
from cloud.store import Store
from protocol.messages import encode_message
from protocol.topics import alert_topic
from tests.cloud.conftest import T0_US, make_alert
from tests.cloud.test_ingest_worker import make_worker, publisher, register, running, until


def _raw(alert_json: bytes, key: str, raw: str) -> bytes:
    """``alert_json`` with the value of ``key`` replaced by raw JSON text."""
    obj = json.loads(alert_json)
    old = f'"{key}":{json.dumps(obj[key], separators=(",", ":"), sort_keys=True)}'
    assert old.encode() in alert_json
    return alert_json.replace(old.encode(), f'"{key}":{raw}'.encode())


def poison(pat: str, dev: str) -> dict[str, bytes]:
    """Alerts (each for a registered patient and device) that once stalled ingest on PostgreSQL or were stored."""
    base = encode_message(make_alert(pat, device_id=dev))
    details = json.dumps(make_alert(pat, device_id=dev).details, separators=(",", ":"), sort_keys=True)
    return {
        "nul_in_message": _raw(base, "message", '"VT\\u0000 180/min"'),
        "nan_in_details": _raw(base, "details", details.replace("182.0", "NaN")),
        "infinity_in_details": _raw(base, "details", details.replace("182.0", "Infinity")),
        "lone_surrogate": _raw(base, "message", '"\\ud800"'),
        "unknown_event": _raw(base, "details", details.replace('"raised"', '"paused"')),
        "onset_2^63": _raw(base, "onset_gateway_us", str(2**63)),
    }


async def test_poison_alerts_are_rejected_acknowledged_and_the_ward_keeps_flowing(
        mqtt_broker, store: Store, unique_id) -> None:
    """One worker, both databases: each poison alert among ten good ones; all good ones stored, every
    poison rejected once (acknowledged: never redelivered), and the worker never reconnects."""
    pat, dev = f"{unique_id}p", f"{unique_id}d"
    await register(store, pat, dev)
    bad = poison(pat, dev)
    good = [make_alert(pat, device_id=dev, onset_us=T0_US + i) for i in range(10)]
    async with running(make_worker(store, mqtt_broker, unique_id, "w")) as w, publisher(mqtt_broker, unique_id) as pub:
        for i, alert in enumerate(good):
            if i < len(bad):
                await pub.publish(alert_topic(pat), list(bad.values())[i], qos=1)
            await pub.publish(alert_topic(pat), encode_message(alert), qos=1)
        await until(lambda: w.counters.alerts_stored + w.counters.rejected_total >= len(good) + len(bad),
                    "every message handled")
    c = w.counters
    assert (c.alerts_stored, c.rejected[Reason.MALFORMED.value], c.rejected_total) == (10, len(bad), len(bad)), c.as_dict()
    assert (c.store_errors, c.unacked, c.connection_errors, c.connects) == (0, 0, 0, 1), c.as_dict()
    assert c.received == len(good) + len(bad)  # nothing redelivered
    assert {a.alert.alert_id for a in await store.alerts_for_patient(pat)} == {a.alert_id for a in good}


async def _refuse_alert_type(store: Store, alert_type: str) -> None:
    """Make the database itself refuse alerts of one type (a check the protocol does not know of), as
    PostgreSQL refuses a NUL character that SQLite keeps."""
    async with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            await conn.execute(text(f"ALTER TABLE alerts ADD CONSTRAINT ck_test_refused "
                                    f"CHECK (alert_type <> '{alert_type}') NOT VALID"))
        else:
            await conn.execute(text(f"CREATE TRIGGER refuse_alert BEFORE INSERT ON alerts "
                                    f"WHEN NEW.alert_type = '{alert_type}' "
                                    f"BEGIN SELECT RAISE(ABORT, 'refused by a test constraint'); END"))


async def test_a_message_the_database_refuses_costs_only_itself(store: Store, unique_id) -> None:
    """A batch with one alert the database refuses: the batch falls back to one by one, the refused
    alert is rejected (``store_refused``, acknowledged) and every other alert of the batch is stored."""
    pat, dev = f"{unique_id}p", f"{unique_id}d"
    await register(store, pat, dev)
    await _refuse_alert_type(store, "refused")
    worker = IngestWorker(store, client_id=f"{unique_id}-batch", store_retries=1, store_retry_s=0.01)
    alerts = [make_alert(pat, device_id=dev, onset_us=T0_US + i) for i in range(4)]
    alerts.insert(2, make_alert(pat, device_id=dev, alert_type="refused"))
    outcomes = await worker.handle_batch([(alert_topic(pat), encode_message(a)) for a in alerts])
    assert outcomes == ["stored", "stored", "store_refused", "stored", "stored"]
    assert worker.counters.rejected[Reason.STORE_REFUSED.value] == 1
    assert worker.counters.store_errors == 0  # a refusal is not a database error: not retried
    assert await store.count_alerts() == 4
    alone = await worker.handle(alert_topic(pat), encode_message(make_alert(pat, device_id=dev, alert_type="refused")))
    assert alone == "store_refused"


async def test_a_database_refusal_over_mqtt_is_acknowledged_not_redelivered(mqtt_broker, store: Store,
                                                                             unique_id) -> None:
    pat, dev = f"{unique_id}p", f"{unique_id}d"
    await register(store, pat, dev)
    await _refuse_alert_type(store, "refused")
    good = [make_alert(pat, device_id=dev, onset_us=T0_US + i) for i in range(5)]
    async with running(make_worker(store, mqtt_broker, unique_id, "w", store_retries=1, store_retry_s=0.01)) as w, \
            publisher(mqtt_broker, unique_id) as pub:
        await pub.publish(alert_topic(pat), encode_message(make_alert(pat, device_id=dev, alert_type="refused")), qos=1)
        for alert in good:
            await pub.publish(alert_topic(pat), encode_message(alert), qos=1)
        await until(lambda: w.counters.alerts_stored == len(good), "the good alerts stored")
    c = w.counters
    assert (c.rejected[Reason.STORE_REFUSED.value], c.unacked, c.connects, c.received) == (1, 0, 1, 6), c.as_dict()


async def test_a_database_outage_is_never_acknowledged(mqtt_broker, migrated_url: str, unique_id) -> None:
    """Connection refused is the database's fault, not the message's: nothing is rejected or acknowledged,
    and once the database is back the broker redelivers and the alert is stored."""
    pat, dev = f"{unique_id}p", f"{unique_id}d"
    down_url = "postgresql://postgres@127.0.0.1:1/nothing" if migrated_url.startswith("postgresql") else \
        "sqlite:////nonexistent-dir/cloud.db"
    async with Store(migrated_url) as real, Store(down_url) as down:
        await register(real, pat, dev)
        worker = make_worker(down, mqtt_broker, unique_id, "w", store_retries=1, store_retry_s=0.01)
        alert = make_alert(pat, device_id=dev)
        async with running(worker) as w, publisher(mqtt_broker, unique_id) as pub:
            await pub.publish(alert_topic(pat), encode_message(alert), qos=1)
            await until(lambda: w.counters.unacked >= 1, "the alert left unacknowledged")
            assert w.counters.rejected_total == 0
            worker.store = real  # the database is back
            await until(lambda: w.counters.alerts_stored == 1, "the redelivered alert stored")
        assert w.counters.rejected_total == 0
        assert [a.alert.alert_id for a in await real.alerts_for_patient(pat)] == [alert.alert_id]


async def test_an_event_for_another_patients_episode_is_refused_and_counted(mqtt_broker, store: Store,
                                                                            unique_id) -> None:
    """Gateway A clears patient B's VT by naming B's episode id in an alert of its own patient and device
    (or of B's patient with another device): refused as ``episode_owner``, B's VT stays active."""
    pa, da, pb, db = f"{unique_id}a", f"{unique_id}x", f"{unique_id}b", f"{unique_id}y"
    await register(store, pa, da)
    await register(store, pb, db)
    await store.add_device(f"{unique_id}z", pb)
    vt = make_alert(pb, device_id=db)
    forged = [make_alert(pa, device_id=da, event="cleared", episode_id=vt.alert_id),
              make_alert(pb, device_id=f"{unique_id}z", event="cleared", episode_id=vt.alert_id)]
    async with running(make_worker(store, mqtt_broker, unique_id, "w")) as w, publisher(mqtt_broker, unique_id) as pub:
        await pub.publish(alert_topic(pb), encode_message(vt), qos=1)
        await until(lambda: w.counters.alerts_stored == 1, "B's VT stored")
        for alert in forged:
            await pub.publish(alert_topic(alert.patient_id), encode_message(alert), qos=1)
        await pub.publish(alert_topic(pa), encode_message(make_alert(pa, device_id=da)), qos=1)
        await until(lambda: w.counters.alerts_stored + w.counters.rejected_total >= 4, "every message handled")
    c = w.counters
    assert (c.alerts_stored, c.rejected[Reason.EPISODE_OWNER.value], c.unacked, c.connects) == (2, 2, 0, 1), c.as_dict()
    assert [e.episode_id for e in await store.active_episodes(pb)] == [vt.alert_id]
    assert len(await store.alerts_for_patient(pb)) == 1
    metrics = ApiMetrics()
    metrics.add_source("ingest", w.counters.as_dict)
    assert 'ecgstream_cloud_ingest_rejected_total{reason="episode_owner"} 2.0' in metrics.render().decode()
