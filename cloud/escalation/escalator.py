"""The escalator: an active clinical episode nobody acknowledged gets its escalation level raised.

Every ``check_interval_s`` it asks the store to escalate what is due (:meth:`cloud.store.Store.escalate_due`):
an active, unacknowledged clinical episode whose priority's ``escalate_after`` (``[escalation]
high_s/medium_s/low_s``) has passed since it was first received, or since its last escalation, goes
up one level, to at most ``max_level``. Each escalation is audited (user ``system``, action
``escalate``) in the same transaction, which is also how every process's live feed learns of it.

Several processes may run an escalator on one database: the store's conditional UPDATE lets exactly
one of them raise a given level, so nothing is escalated twice. An acknowledgement stops further
escalation (the edge's clear ends the episode). A database error is logged and counted; the next
check tries again.

Telling staff away from the screen is :mod:`cloud.escalation.delivery`'s job: it finds the episodes this
(or any) escalator raised and delivers them to the ``[[escalation.channels]]``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from typing import Any

from cloud.config import EscalationConfig
from cloud.store import Escalation

log = logging.getLogger(__name__)


@dataclass
class EscalationCounters:
    checks: int = 0
    escalations: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Escalator:
    """``store`` is a :class:`cloud.store.Store`::

        await Escalator(store, EscalationConfig(high_s=60)).run()   # until cancelled
    """

    def __init__(self, store: Any, config: EscalationConfig, *, categories: tuple[str, ...] = ("clinical",)) -> None:
        self.store = store
        self.config = config
        self.categories = categories
        self.counters = EscalationCounters()

    async def check_once(self) -> list[Escalation]:
        """Escalate everything due now; returns what this call escalated."""
        self.counters.checks += 1
        done = await self.store.escalate_due(self.config.after_us(), max_level=self.config.max_level,
                                             categories=self.categories)
        for e in done:
            self.counters.escalations += 1
            log.warning("escalated %s alarm %s of patient %s (episode %s) to level %d: not acknowledged",
                        e.priority, e.alert_type, e.patient_id, e.episode_id, e.level)
        return done

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Check every ``check_interval_s`` until cancelled or ``stop`` is set."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database errors of any driver: retry next time
                self.counters.errors += 1
                log.error("escalation check failed: %s: %s", type(exc).__name__, exc)
            try:
                await asyncio.wait_for(stop.wait(), self.config.check_interval_s)
            except TimeoutError:
                pass
