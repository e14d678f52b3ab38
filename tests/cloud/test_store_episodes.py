"""Episode state is order-independent: any delivery order of an episode's messages, with resends,
gives the same active set (property test on both backends)."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.store import Store
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
