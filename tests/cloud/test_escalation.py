"""Escalation of unacknowledged clinical alarms: thresholds per priority, levels, audit, the live feed, and
several escalators (processes) on one database never escalating twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from cloud.config import EscalationConfig
from cloud.escalation import Escalator
from cloud.store import Store
from tests.cloud.api_support import CLINICIAN, WAIT_S, SseReader, make_api, serve, until
from tests.cloud.conftest import make_alert

S = 1_000_000  # µs
WAITS = {"high": 60 * S, "medium": 180 * S}


class Clock:
    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def timed(store: Store) -> AsyncIterator[tuple[Store, Clock]]:
    clock = Clock(store.clock())
    store.clock = clock
    yield store, clock


async def test_escalates_after_the_priority_wait_and_again_up_to_max(timed: tuple[Store, Clock]) -> None:
    store, clock = timed
    vt = make_alert("pat-1", priority="high")
    af = make_alert("pat-2", priority="medium", alert_type="af", family="af")
    await store.store_alert(vt)
    await store.store_alert(af)
    clock.now += 59 * S
    assert await store.escalate_due(WAITS) == []
    clock.now += 1 * S
    done = await store.escalate_due(WAITS, max_level=2)
    assert [(e.episode_id, e.level, e.alert_id) for e in done] == [(vt.alert_id, 1, vt.alert_id)]
    clock.now += 59 * S  # the next level counts from the last escalation
    assert await store.escalate_due(WAITS, max_level=2) == []
    clock.now += 1 * S
    assert [e.level for e in await store.escalate_due(WAITS, max_level=2)] == [2]
    clock.now += 60 * S
    done = await store.escalate_due(WAITS, max_level=2)  # AF reaches its 180 s; VT is at max
    assert [(e.episode_id, e.level) for e in done] == [(af.alert_id, 1)]
    episode = await store.get_episode(vt.alert_id)
    assert (episode.escalation_level, episode.escalated_us) == (2, clock.now - 60 * S)
    log = await store.audit_log(target=f"episode:{vt.alert_id}")
    assert [(e.user, e.action, e.details["level"]) for e in log] == [("system", "escalate", 1),
                                                                      ("system", "escalate", 2)]


async def test_acknowledged_cleared_and_technical_episodes_are_not_escalated(timed: tuple[Store, Clock]) -> None:
    store, clock = timed
    acked, cleared = make_alert("pat-1"), make_alert("pat-2")
    technical = make_alert("pat-3", category="technical", alert_type="lead_off", family="lead_off")
    for a in (acked, cleared, technical):
        await store.store_alert(a)
    await store.store_alert(make_alert("pat-2", event="cleared", episode_id=cleared.alert_id))
    await store.acknowledge(acked.alert_id, "dr.osei")
    clock.now += 3600 * S
    assert await store.escalate_due(WAITS | {"low": S}) == []


async def test_two_processes_never_escalate_the_same_level_twice(migrated_url: str) -> None:
    """Two Stores (as two `cloud run` processes would have) race on the same due episodes."""
    async with Store(migrated_url) as a, Store(migrated_url) as b:
        episodes = [make_alert(f"pat-{i}") for i in range(20)]
        for alert in episodes:
            await a.store_alert(alert)
        base = a.clock()
        for level in (1, 2):
            a.clock = b.clock = lambda at=base + level * 61 * S: at  # both "processes" see the same time
            results = await asyncio.gather(*(s.escalate_due(WAITS, max_level=5) for s in (a, b, a, b)))
            escalated = [e.episode_id for r in results for e in r]
            assert sorted(escalated) == sorted(e.alert_id for e in episodes)  # each once, by whichever won
        log = await a.audit_log(limit=None)
        assert len(log) == 2 * len(episodes)


async def test_escalator_task_feed_and_a_second_escalator(tmp_path) -> None:
    """Real time with short waits: both escalators run; each level happens once; the feed shows it."""
    from cloud.store import upgrade_database

    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    config = EscalationConfig(high_s=0.2, medium_s=0.2, low_s=0.2, max_level=3, check_interval_s=0.02)
    async with make_api(url) as api, Store(url) as other:
        await api.store.add_patient("pat-1")
        token = await api.token(CLINICIAN)
        runners = [asyncio.create_task(Escalator(s, config).run()) for s in (api.store, other)]
        try:
            async with serve(api.app) as base, httpx.AsyncClient(
                    base_url=base, timeout=WAIT_S, headers={"Authorization": f"Bearer {token}"}) as c:
                async with c.stream("GET", "/api/events") as r:
                    feed = SseReader(r)
                    vt = make_alert("pat-1")
                    await api.store.store_alert(vt)
                    levels = []
                    while len(levels) < 3:
                        _, _, data = await feed.until(lambda e, i, d: e == "escalation")
                        assert data["episode_id"] == vt.alert_id and data["alert_id"] == vt.alert_id
                        levels.append(data["level"])
                    assert levels == [1, 2, 3]
                shown = (await c.get(f"/api/alerts/{vt.alert_id}")).json()
                assert shown["escalation_level"] == 3
        finally:
            for t in runners:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        log = await api.store.audit_log(target=f"episode:{vt.alert_id}")
        assert [e.details["level"] for e in log if e.action == "escalate"] == [1, 2, 3]


async def test_acknowledging_stops_escalation(tmp_path) -> None:
    from cloud.store import upgrade_database

    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    config = EscalationConfig(high_s=0.2, max_level=50, check_interval_s=0.02)
    async with Store(url) as store:
        escalator = Escalator(store, config)
        task = asyncio.create_task(escalator.run())
        try:
            vt = make_alert("pat-1")
            await store.store_alert(vt)
            await until(lambda: escalator.counters.escalations >= 1, "a first escalation")
            await store.acknowledge(vt.alert_id, "dr.osei")
            level = (await store.get_episode(vt.alert_id)).escalation_level
            checks = escalator.counters.checks
            await until(lambda: escalator.counters.checks >= checks + 20, "more escalation checks")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert (await store.get_episode(vt.alert_id)).escalation_level == level
