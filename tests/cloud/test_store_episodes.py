"""Episode state is order-independent: any delivery order of an episode's messages, with resends,
gives the same active set (property test on both backends); and an episode belongs to the patient and
device that raised it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.store import Store
from protocol.errors import SchemaError
from protocol.messages import Alert
from tests.cloud.conftest import T0_US, make_alert

PRIORITIES = ["low", "medium", "high"]

# one episode: its raise priority, how many escalations (each one step higher), and whether it cleared
episode_st = st.tuples(st.integers(0, 2), st.integers(0, 2), st.booleans())


def _messages(patient: str, k: int, spec: tuple[int, int, bool]) -> tuple[list[Alert], str, int]:
    start, escalations, cleared = spec
    raised = make_alert(patient, priority=PRIORITIES[start], alert_type=f"t{start}", onset_us=T0_US + k,
                        family=f"f{k}")
    ep = raised.alert_id
    top = min(2, start + escalations)
    msgs = [raised] + [make_alert(patient, event="escalated", episode_id=ep, priority=PRIORITIES[p],
                                  alert_type=f"t{p}", onset_us=T0_US + k, family=f"f{k}")
                       for p in range(start + 1, top + 1)]
    if cleared:
        msgs.append(make_alert(patient, event="cleared", episode_id=ep, priority=PRIORITIES[top],
                               alert_type=f"t{top}", onset_us=T0_US + k, family=f"f{k}"))
    return msgs, ep, top


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(episode_st, min_size=1, max_size=5), data=st.data())
def test_any_order_with_resends_gives_the_same_active_set(migrated_url: str, specs, data) -> None:
    patient = f"p-{uuid.uuid4().hex[:12]}"  # fresh per example (not drawn, so shrinking keeps it fresh)
    messages: list[Alert] = []
    expected: dict[str, tuple[str, str]] = {}
    for k, spec in enumerate(specs):
        msgs, ep, top = _messages(patient, k, spec)
        messages += msgs
        if not spec[2]:
            expected[ep] = (PRIORITIES[top], f"t{top}")
    resent = data.draw(st.lists(st.sampled_from(messages), max_size=6), label="resent")
    delivery = data.draw(st.permutations(messages + resent), label="delivery")
    split = data.draw(st.integers(0, len(delivery)), label="split")

    async def run() -> None:
        async with Store(migrated_url) as a, Store(migrated_url) as b:
            # two workers, each getting part of the stream concurrently
            fresh = await asyncio.gather(*(a.store_alert(m) for m in delivery[:split]),
                                         *(b.store_alert(m) for m in delivery[split:]))
            assert sum(fresh) == len(messages)
            active = await a.active_episodes(patient)
            assert {e.episode_id: (e.priority.value, e.alert_type) for e in active} == expected
            assert len(await a.alerts_for_patient(patient)) == len(messages)

    asyncio.run(run())


@pytest.mark.parametrize("intruder", ["other_patient", "other_device"])
async def test_an_event_naming_someone_elses_episode_changes_nothing(store: Store, intruder: str) -> None:
    """Gateway A's clear (or escalation) naming patient B's episode id, sent as A's patient and device or as
    B's patient from another device, is refused before anything is written: B's VT stays active."""
    vt = make_alert("pat-b", device_id="dev-b", priority="medium")
    assert await store.store_alert(vt)
    patient, device = ("pat-a", "dev-a") if intruder == "other_patient" else ("pat-b", "dev-other")
    for event in ("cleared", "escalated"):
        forged = make_alert(patient, device_id=device, event=event, episode_id=vt.alert_id, priority="high")
        with pytest.raises(SchemaError, match="belongs to another patient or device"):
            await store.store_alert(forged)
    episode = await store.get_episode(vt.alert_id)
    assert (episode.active, episode.priority.value, episode.messages) == (True, "medium", 1)
    assert [a.alert.alert_id for a in await store.alerts_of_episode(vt.alert_id)] == [vt.alert_id]
    assert store.counters.alerts_rejected == 2
    # the rightful sender still clears it
    assert await store.store_alert(make_alert("pat-b", device_id="dev-b", event="cleared", episode_id=vt.alert_id))
    assert not (await store.get_episode(vt.alert_id)).active


async def test_a_batch_with_a_forged_event_stores_nothing(store: Store) -> None:
    vt = make_alert("pat-b", device_id="dev-b")
    assert await store.store_alert(vt)
    good = make_alert("pat-a", device_id="dev-a")
    forged = make_alert("pat-a", device_id="dev-a", event="cleared", episode_id=vt.alert_id)
    with pytest.raises(SchemaError):
        await store.store_batch([good, forged])
    assert await store.count_alerts() == 1 and (await store.get_episode(vt.alert_id)).active
