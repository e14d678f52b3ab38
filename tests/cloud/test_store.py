"""The cloud store on SQLite and PostgreSQL: alerts, episodes, windows, status, acknowledgements, audit."""

from __future__ import annotations

import asyncio
import dataclasses
import zlib

import numpy as np
import pytest
from sqlalchemy import func, select

from cloud.store import NotFound, Store
from cloud.store.schema import AlertRow, AuditEntry, Episode, WindowRow
from protocol.errors import FrameError, ProtocolError, SchemaError
from protocol.messages import DeviceStatus, GatewayStatus, Priority
from protocol.window_payload import decode_window, encode_window
from tests.cloud.conftest import T0_US, make_alert, make_window

S = 1_000_000


async def _rows(store: Store, table) -> int:
    async with store.session() as s:
        return int(await s.scalar(select(func.count()).select_from(table)))


# -- alerts -------------------------------------------------------------------------------------


async def test_alert_round_trip(store: Store) -> None:
    alert = make_alert(window_id=make_window().window_id)
    assert await store.store_alert(alert, received_us=123) is True
    got = await store.get_alert(alert.alert_id)
    assert got.alert == alert
    assert (got.episode_id, got.event, got.received_us) == (alert.alert_id, "raised", 123)
    assert [a.alert for a in await store.alerts_for_patient("pat-1")] == [alert]


async def test_duplicate_alert_returns_false_and_keeps_one_row(store: Store) -> None:
    alert = make_alert()
    assert await store.store_alert(alert)
    assert not await store.store_alert(alert)
    assert not await store.store_alert(dataclasses.replace(alert, message="resent, different text"))
    assert await _rows(store, AlertRow) == 1
    assert (await store.get_alert(alert.alert_id)).alert.message == alert.message  # the first one stays
    assert (await store.get_episode(alert.alert_id)).messages == 1  # a duplicate does not touch the episode
    assert (store.counters.alerts_stored, store.counters.alerts_duplicate) == (1, 2)


async def test_concurrent_duplicate_alerts_leave_one_row(migrated_url: str) -> None:
    """Two workers (two engines, two pools) store the same alerts at the same moment."""
    alerts = [make_alert(onset_us=T0_US + i) for i in range(20)]
    async with Store(migrated_url) as a, Store(migrated_url) as b:
        results = await asyncio.gather(*(s.store_alert(x) for x in alerts for s in (a, b, a)))
        assert sum(results) == len(alerts)
        for i in range(len(alerts)):
            assert sum(results[3 * i: 3 * i + 3]) == 1  # exactly one winner per alert
        assert await a.count_alerts() == len(alerts)
        assert a.counters.alerts_duplicate + b.counters.alerts_duplicate == 2 * len(alerts)
        assert len(await a.active_episodes()) == len(alerts)
        assert {e.messages for e in await a.active_episodes()} == {1}


async def test_concurrent_same_alert_from_two_sessions(store: Store) -> None:
    alert = make_alert()
    assert sorted(await asyncio.gather(store.store_alert(alert), store.store_alert(alert))) == [False, True]
    assert await _rows(store, AlertRow) == 1


async def test_alert_time_range_query(store: Store) -> None:
    for i in range(10):
        await store.store_alert(make_alert(onset_us=T0_US + i * S))
    await store.store_alert(make_alert("pat-2", onset_us=T0_US + 3 * S))
    got = await store.alerts_for_patient("pat-1", T0_US + 2 * S, T0_US + 5 * S)
    assert [a.alert.onset_gateway_us for a in got] == [T0_US + 2 * S, T0_US + 3 * S, T0_US + 4 * S]
    assert len(await store.alerts_for_patient("pat-1", since_us=T0_US + 8 * S)) == 2
    assert len(await store.alerts_for_patient("pat-1", until_us=T0_US + 1)) == 1
    assert len(await store.alerts_for_patient("pat-1", limit=4)) == 4
    assert len(await store.alerts_for_patient("pat-2")) == 1
    assert await store.alerts_for_patient("nobody") == []


async def test_alerts_after_is_a_feed_cursor(store: Store) -> None:
    first = [make_alert(onset_us=T0_US + i) for i in range(3)]
    for a in first:
        await store.store_alert(a)
    page = await store.alerts_after(0)
    assert [p.alert.alert_id for p in page] == [a.alert_id for a in first]
    late = make_alert(onset_us=T0_US - S)  # onset earlier, stored later: still after the cursor
    await store.store_alert(late)
    assert [p.alert.alert_id for p in await store.alerts_after(page[-1].seq)] == [late.alert_id]


@pytest.mark.parametrize("bad", [
    {"details": {"event": "snoozed"}},
    {"details": {"event": "raised", "episode_id": "not-a-uuid"}},
    {"onset_gateway_us": 1 << 63},
    {"patient_id": "bad/id"},
])
async def test_invalid_alert_raises_schema_error_and_stores_nothing(store: Store, bad: dict) -> None:
    with pytest.raises(SchemaError):
        await store.store_alert(dataclasses.replace(make_alert(), **bad))
    assert await _rows(store, AlertRow) == 0
    assert await _rows(store, Episode) == 0
    assert store.counters.alerts_rejected == 1


# -- episodes -----------------------------------------------------------------------------------


async def test_raise_escalate_clear(store: Store) -> None:
    raised = make_alert(alert_type="pause", priority="medium", family="asystole")
    ep = raised.alert_id
    await store.store_alert(raised)
    [active] = await store.active_episodes()
    assert (active.episode_id, active.alert_type, active.priority, active.family) == (ep, "pause", Priority.MEDIUM,
                                                                                      "asystole")
    await store.store_alert(make_alert(event="escalated", episode_id=ep, alert_type="asystole", family="asystole"))
    [active] = await store.active_episodes("pat-1")
    assert (active.alert_type, active.priority, active.messages) == ("asystole", Priority.HIGH, 2)
    await store.store_alert(make_alert(event="cleared", episode_id=ep, alert_type="asystole", family="asystole"))
    assert await store.active_episodes() == []
    state = await store.get_episode(ep)
    assert (state.raised, state.cleared, state.active, state.messages) == (True, True, False, 3)
    assert [a.event for a in await store.alerts_of_episode(ep)] == ["raised", "escalated", "cleared"]
    assert len(await store.alerts_for_patient("pat-1")) == 3  # every message is kept


async def test_clear_before_raise_is_not_active(store: Store) -> None:
    raised = make_alert()
    await store.store_alert(make_alert(event="cleared", episode_id=raised.alert_id, onset_us=raised.onset_gateway_us))
    assert await store.active_episodes() == []
    await store.store_alert(raised)
    assert await store.active_episodes() == []
    assert (await store.get_episode(raised.alert_id)).messages == 2


async def test_active_episodes_by_patient_and_priority(store: Store) -> None:
    low = make_alert("pat-1", alert_type="lead_off", priority="low", category="technical", family="lead_off")
    high = make_alert("pat-1", onset_us=T0_US + S)
    other = make_alert("pat-2", alert_type="af", priority="medium", family="af")
    no_episode = make_alert("pat-2", event=None, alert_type="battery_low", priority="low", category="technical")
    for a in (low, high, other, no_episode):
        await store.store_alert(a)
    assert [e.episode_id for e in await store.active_episodes("pat-1")] == [high.alert_id, low.alert_id]
    assert [e.priority for e in await store.active_episodes()] == ["high", "medium", "low", "low"]
    assert {e.episode_id for e in await store.active_episodes("pat-2")} == {other.alert_id, no_episode.alert_id}


# -- acknowledgements and audit -----------------------------------------------------------------


async def test_acknowledge_and_audit(store: Store) -> None:
    alert = make_alert()
    await store.store_alert(alert)
    ack = await store.acknowledge(alert.alert_id, "nurse.kim", note="called patient")
    assert (ack.episode_id, ack.user, ack.note) == (alert.alert_id, "nurse.kim", "called patient")
    await store.acknowledge(alert.alert_id, "dr.osei")
    state = await store.get_episode(alert.alert_id)
    assert (state.acknowledged_by, state.acknowledged_us) == ("nurse.kim", ack.at_us)  # the first one shows
    assert state.active  # acknowledging does not clear: the edge's clear message does
    assert [a.user for a in await store.acknowledgements(alert.alert_id)] == ["nurse.kim", "dr.osei"]
    await store.audit("dr.osei", "view", f"window:{alert.window_id}", {"via": "dashboard"})
    log = await store.audit_log()
    assert [(e.user, e.action) for e in log] == [("nurse.kim", "acknowledge"), ("dr.osei", "acknowledge"),
                                                  ("dr.osei", "view")]
    assert log[0].target == f"episode:{alert.alert_id}" and log[0].details == {"note": "called patient"}
    assert log[2].details == {"via": "dashboard"}
    assert [e.action for e in await store.audit_log(user="nurse.kim")] == ["acknowledge"]
    assert len(await store.audit_log(target=f"episode:{alert.alert_id}")) == 2


async def test_acknowledge_unknown_episode(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.acknowledge(make_alert().alert_id, "nurse.kim")
    assert await _rows(store, AuditEntry) == 0


# -- windows ------------------------------------------------------------------------------------


async def test_window_round_trip_from_bytes_and_object(store: Store) -> None:
    w1, w2 = make_window(seed=1), make_window(seed=2, t0_us=T0_US + 10 * S)
    payload = encode_window(w1)
    assert await store.store_window(payload)
    assert await store.store_window(w2)
    assert await store.load_window(w1.window_id) == w1
    loaded = await store.load_window(w2.window_id)
    assert loaded == w2 and np.array_equal(loaded.samples, w2.samples)
    assert np.array_equal(loaded.uncertainty, w2.uncertainty)
    assert await store.window_payload(w1.window_id) == payload  # the bytes as received
    [meta, _] = await store.windows_for_patient("pat-1")
    assert (meta.window_id, meta.t0_us, meta.fs_hz, meta.n_samples, meta.leads, meta.reconstructed) == (
        w1.window_id, w1.t0_us, 500, 5000, w1.leads, w1.reconstructed)
    assert meta.has_uncertainty and meta.payload_bytes == len(payload) and meta.duration_us == 10 * S


async def test_duplicate_window(store: Store) -> None:
    w = make_window()
    assert await store.store_window(w)
    assert not await store.store_window(encode_window(w))
    assert not await store.store_window(dataclasses.replace(w, t0_us=w.t0_us + 1))  # same id wins, first kept
    assert await _rows(store, WindowRow) == 1
    assert (await store.load_window(w.window_id)).t0_us == w.t0_us
    assert (store.counters.windows_stored, store.counters.windows_duplicate) == (1, 2)


async def test_concurrent_duplicate_windows(migrated_url: str) -> None:
    payloads = [encode_window(make_window(seed=i, t0_us=T0_US + i * 10 * S, seconds=2)) for i in range(5)]
    async with Store(migrated_url) as a, Store(migrated_url) as b:
        results = await asyncio.gather(*(s.store_window(p) for p in payloads for s in (a, b)))
        assert sum(results) == len(payloads)
        assert await a.count_windows() == len(payloads)


async def test_window_time_range(store: Store) -> None:
    for i in range(6):
        await store.store_window(make_window(t0_us=T0_US + i * 10 * S, seconds=1, seed=i))
    await store.store_window(make_window("pat-2", t0_us=T0_US + 20 * S, seconds=1))
    got = await store.windows_for_patient("pat-1", T0_US + 10 * S, T0_US + 40 * S)
    assert [m.t0_us for m in got] == [T0_US + k * 10 * S for k in (1, 2, 3)]
    assert len(await store.windows_for_patient("pat-1", t0_from=T0_US + 50 * S)) == 1
    assert len(await store.windows_for_patient("pat-2")) == 1


def _corruptions(payload: bytes) -> list[bytes]:
    flipped = bytearray(payload)
    flipped[-10] ^= 0xFF
    head = payload[:-8]  # cut inside the zlib stream
    other = payload[:-len(zlib.compress(b""))]
    return [bytes(flipped), head, other, b"", b"ES\x09\x01" + payload[4:], payload + b"\x00"]


async def test_corrupt_window_raises_protocol_error_and_stores_nothing(store: Store) -> None:
    payload = encode_window(make_window(seconds=1))
    for bad in _corruptions(payload):
        with pytest.raises(ProtocolError):
            await store.store_window(bad)
    with pytest.raises(FrameError):
        await store.store_window(bytes(payload[:40]))
    assert await _rows(store, WindowRow) == 0
    assert store.counters.windows_rejected == len(_corruptions(payload)) + 1
    with pytest.raises(NotFound):
        await store.load_window(decode_window(payload).window_id)


async def test_window_size_10s_12_lead(store: Store) -> None:
    """A realistic 10 s, 500 Hz, 12-lead window with 9 reconstructed leads and their uncertainty is stored
    in under 25 kB (raw int16 would be 210 kB)."""
    w = make_window(realistic=True)
    await store.store_window(w)
    [meta] = await store.windows_for_patient("pat-1")
    raw = (12 + 9) * 5000 * 2
    assert meta.payload_bytes < 25_000 and raw / meta.payload_bytes > 8


# -- status and registry ------------------------------------------------------------------------


async def test_latest_device_and_gateway_status(store: Store) -> None:
    assert await store.latest_device_status("dev-1") is None
    s1 = DeviceStatus("dev-1", t_device_us=1_000, battery_pct=90, lead_off=("RA",), profile="wear3")
    s2 = DeviceStatus("dev-1", t_device_us=2_000, battery_pct=89, connected=False)
    assert await store.upsert_device_status(s1)
    assert await store.upsert_device_status(s2)
    assert not await store.upsert_device_status(s1)  # an older resend does not roll back
    assert await store.latest_device_status("dev-1") == s2
    assert set(await store.device_statuses()) == {"dev-1"}
    g1, g2 = GatewayStatus("gw-1", t_gateway_us=5, streams=3), GatewayStatus("gw-1", t_gateway_us=9, outbox_depth=7)
    assert await store.upsert_gateway_status(g2)
    assert not await store.upsert_gateway_status(g1)
    assert await store.latest_gateway_status("gw-1") == g2
    assert (store.counters.status_updated, store.counters.status_stale) == (3, 2)


async def test_registry(store: Store) -> None:
    assert await store.add_patient("pat-1", "Patient One")
    assert not await store.add_patient("pat-1", "Again")
    assert await store.add_device("dev-1", "pat-1", profile="wear3", credentials_hash="$argon2id$placeholder")
    assert not await store.add_device("dev-1")
    await store.add_patient("pat-2")
    await store.assign_device("dev-1", "pat-2")
    [dev] = await store.list_devices(patient_id="pat-2")
    assert (dev.device_id, dev.profile, dev.credentials_hash) == ("dev-1", "wear3", "$argon2id$placeholder")
    assert [p.patient_id for p in await store.list_patients()] == ["pat-1", "pat-2"]
    with pytest.raises(NotFound):
        await store.assign_device("dev-9", "pat-1")
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):  # the registry keeps its foreign keys
        await store.add_device("dev-2", "nobody")


# -- the store split by concern: records, repositories, errors -------------------------------------


async def test_registry_reads_are_frozen_records_not_orm_rows(store: Store) -> None:
    from cloud.store import DeviceRecord, PatientRecord

    await store.add_patient("pat-1", "Patient One")
    await store.add_device("dev-1", "pat-1", profile="wear3")
    await store.add_device("dev-2")
    dev = await store.get_device("dev-1")
    assert dev == DeviceRecord(device_id="dev-1", patient_id="pat-1", profile="wear3", credentials_hash=None,
                               active=True, created_us=dev.created_us)
    assert await store.get_device("dev-9") is None
    assert [d.device_id for d in await store.list_devices()] == ["dev-1", "dev-2"]
    assert [d.device_id for d in await store.list_devices(patient_ids=["pat-1"])] == ["dev-1"]
    [patient] = await store.list_patients()
    assert isinstance(patient, PatientRecord) and patient == await store.get_patient("pat-1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        dev.patient_id = "pat-2"  # type: ignore[misc]
    assert (await store.get_device("dev-1")).patient_id == "pat-1"


async def test_the_repositories_behind_the_facade_see_the_same_data(store: Store) -> None:
    alert, window = make_alert(), make_window()
    assert await store.alerts.store_alert(alert)
    assert await store.windows.store_window(window)
    await store.registry.add_patient("pat-1")
    assert (await store.get_alert(alert.alert_id)).alert == alert
    assert [m.window_id for m in await store.list_windows()] == [window.window_id]
    assert [p.patient_id for p in await store.patients()] == ["pat-1"]
    assert (store.counters.alerts_stored, store.counters.windows_stored) == (1, 1)
    store.clock = lambda: 42  # one clock for every repository
    assert (await store.audit_trail.audit("ana", "view", f"window:{window.window_id}")).at_us == 42
    assert (await store.acknowledge(alert.alert_id, "ana")).at_us == 42


async def test_a_received_window_is_stored_verbatim_with_the_metadata_of_its_decoded_form(store: Store) -> None:
    from cloud.store import ReceivedWindow

    w = make_window(seconds=2)
    payload = encode_window(w)
    [new] = await store.store_batch([ReceivedWindow(w, payload)])
    assert new and await store.window_payload(w.window_id) == payload
    meta = await store.window_meta(w.window_id)
    assert (meta.t0_us, meta.n_samples, meta.leads, meta.payload_bytes) == (w.t0_us, 1000, w.leads, len(payload))
    assert await store.load_window(w.window_id) == w
    assert not await store.store_window(payload)  # the same window as plain bytes: a duplicate
    assert (store.counters.windows_stored, store.counters.windows_duplicate) == (1, 1)


def test_not_found_is_a_cloud_error_and_a_lookup_error_from_every_old_import_path() -> None:
    from cloud.errors import CloudError
    from cloud.store.repository import NotFound as OldNotFound
    from cloud.store.repository import Store as OldStore

    assert OldNotFound is NotFound and OldStore is Store
    assert issubclass(NotFound, CloudError) and issubclass(NotFound, LookupError)
