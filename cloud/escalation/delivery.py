"""The delivery loop: escalations (and, for ``on_raise`` channels, new clinical alarms) reach staff away
from the screen through the ``[[escalation.channels]]``.

Every ``[escalation] delivery_interval_s`` (sooner when this process stores an alert or escalates an
episode) :class:`DeliveryWorker`:

1. **plans**: each active, unacknowledged clinical episode gets one ``escalation_deliveries`` row per
   channel that wants it at its current level (:mod:`cloud.escalation.routing`); the row's unique key
   (episode, level, channel) makes this idempotent across processes and restarts, so an escalation made
   by any process, even one that died right after escalating, is delivered;
2. **sends** the rows that are due: claimed by exactly one process (:meth:`DeliveryRepository.claim_due
   <cloud.store.repositories.deliveries.DeliveryRepository.claim_due>`), sent concurrently, and marked
   ``delivered``, retried after ``backoff_s`` (doubling, at most ``backoff_max_s``), or ``failed`` after
   ``max_attempts`` tries. Delivered and failed are audited (``escalation_delivered`` /
   ``escalation_failed``, user ``system``, target ``episode:<id>``). A row whose episode was acknowledged
   or ended before it could be sent is ``cancelled`` instead: nobody is paged for a handled alarm.

Counts per channel (enqueued, delivered, retried, failed, cancelled) are in :attr:`DeliveryWorker.counters`
(``/metrics``: ``ecgstream_cloud_deliveries_*_total{channel=…}``); what the database holds, over all
processes, is :meth:`~cloud.store.repositories.deliveries.DeliveryRepository.counts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cloud.config import EscalationConfig
from cloud.errors import NotFound
from cloud.escalation.channels import Channel, DeliveryError
from cloud.escalation.notice import Notice
from cloud.escalation.routing import lowest_level, plan
from cloud.store import Delivery

log = logging.getLogger(__name__)

LEASE_MARGIN_S = 30.0
"""A claim lasts this much longer than the slowest channel's time-out allows a send to take."""


@dataclass
class DeliveryCounters:
    """What this process did, per channel."""

    enqueued: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)
    """Tries that failed and will be tried again."""
    failed: dict[str, int] = field(default_factory=dict)
    """Deliveries given up after their last try."""
    cancelled: dict[str, int] = field(default_factory=dict)
    lost_claims: int = 0
    """Outcomes not recorded because another process had taken the row over (its lease ran out)."""
    errors: int = 0
    """Rounds of the loop that failed (a database error; the next round retries)."""

    def count(self, what: str, channel: str) -> None:
        bucket: dict[str, int] = getattr(self, what)
        bucket[channel] = bucket.get(channel, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"enqueued": dict(self.enqueued), "delivered": dict(self.delivered), "retried": dict(self.retried),
                "failed": dict(self.failed), "cancelled": dict(self.cancelled), "lost_claims": self.lost_claims,
                "errors": self.errors}


class DeliveryWorker:
    """``store`` is a :class:`cloud.store.Store`; ``channels`` from :func:`cloud.escalation.channels.build_channels`::

        worker = DeliveryWorker(store, settings.escalation, build_channels(settings.escalation.channels))
        await worker.run()          # until cancelled or ``stop`` is set
    """

    def __init__(self, store: Any, config: EscalationConfig, channels: Sequence[Channel], *,
                 categories: tuple[str, ...] = ("clinical",), batch: int = 32) -> None:
        self.store = store
        self.config = config
        self.channels = {c.config.name: c for c in channels}
        self.categories = categories
        self.batch = batch
        self.counters = DeliveryCounters()
        self._wake = asyncio.Event()
        slowest = max((c.config.timeout_s for c in channels), default=10.0)
        self.lease_us = int((3 * slowest + LEASE_MARGIN_S) * 1e6)

    def wake(self) -> None:
        """Look for work now instead of at the next interval."""
        self._wake.set()

    def _on_change(self, kind: str) -> None:
        if kind in ("alert", "escalation"):
            self._wake.set()

    async def plan_once(self) -> list[Delivery]:
        """Create the deliveries that active episodes still need; returns those this call created."""
        if not self.channels:
            return []
        candidates = await self.store.deliveries.candidates(min_level=lowest_level(self.config),
                                                            categories=self.categories)
        created: list[Delivery] = await self.store.deliveries.enqueue(plan(self.config, candidates))
        for d in created:
            self.counters.count("enqueued", d.channel)
        return created

    async def send_once(self) -> list[Delivery]:
        """Send what is due; returns the deliveries as recorded after this try."""
        claimed: list[Delivery] = await self.store.deliveries.claim_due(list(self.channels), lease_us=self.lease_us,
                                                                        limit=self.batch)
        if not claimed:
            return []
        done = await asyncio.gather(*(self._deliver(d) for d in claimed))
        return [d for d in done if d is not None]

    async def run_once(self) -> list[Delivery]:
        """Plan, then send everything due (batch after batch)."""
        await self.plan_once()
        out: list[Delivery] = []
        while True:
            done = await self.send_once()
            out += done
            if len(done) < self.batch:
                return out

    async def _deliver(self, d: Delivery) -> Delivery | None:
        channel = self.channels[d.channel]
        repo = self.store.deliveries
        notice, why_not = await self._notice(d)
        if notice is None:
            out: Delivery | None = await repo.cancelled(d, why_not)
            if out is not None:
                self.counters.count("cancelled", d.channel)
                log.info("escalation delivery %d to %s cancelled: %s", d.id, d.channel, why_not)
            return self._recorded(out, d)
        try:
            await channel.send(notice)
        except DeliveryError as exc:
            error = str(exc)
            if d.attempts >= channel.config.max_attempts:
                out = await repo.failed(d, error)
                if out is not None:
                    self.counters.count("failed", d.channel)
                    log.error("escalation of %s alarm %s (patient %s, level %d) NOT delivered to %s after %d tries: %s",
                              d.priority, notice.alert_type, d.patient_id, d.level, d.channel, d.attempts, error)
                return self._recorded(out, d)
            delay_s = min(channel.config.backoff_s * 2 ** (d.attempts - 1), channel.config.backoff_max_s)
            out = await repo.retry(d, error, at_us=self.store.clock() + int(delay_s * 1e6))
            if out is not None:
                self.counters.count("retried", d.channel)
                log.warning("escalation delivery %d to %s failed (try %d of %d, next in %.1f s): %s", d.id, d.channel,
                            d.attempts, channel.config.max_attempts, delay_s, error)
            return self._recorded(out, d)
        out = await repo.delivered(d)
        if out is not None:
            self.counters.count("delivered", d.channel)
            log.info("escalation of %s alarm %s (patient %s, level %d) delivered to %s (%s)", d.priority,
                     notice.alert_type, d.patient_id, d.level, d.channel, d.kind)
        return self._recorded(out, d)

    def _recorded(self, out: Delivery | None, claimed: Delivery) -> Delivery | None:
        if out is None:
            self.counters.lost_claims += 1
            log.warning("escalation delivery %d to %s: another process took it over; its outcome stands",
                        claimed.id, claimed.channel)
        return out

    async def _notice(self, d: Delivery) -> tuple[Notice | None, str]:
        """The notice for ``d``, or None and why it is no longer needed."""
        try:
            episode = await self.store.get_episode(d.episode_id)
        except NotFound:
            return None, "episode not found"
        if episode.acknowledged_by is not None:
            return None, f"acknowledged by {episode.acknowledged_by} before delivery"
        if not episode.active:
            return None, "episode ended (cleared) before delivery"
        message = ""
        if d.alert_id is not None:
            with contextlib.suppress(NotFound):
                message = (await self.store.get_alert(d.alert_id)).alert.message
        patient = await self.store.get_patient(d.patient_id)
        return Notice(
            delivery_id=d.id, channel=d.channel, event="raised" if d.level == 0 else "escalated",
            episode_id=d.episode_id, alert_id=d.alert_id, patient_id=d.patient_id,
            patient_name=patient.display_name if patient is not None else "", alert_type=episode.alert_type,
            category=str(getattr(episode.category, "value", episode.category)),
            priority=d.priority, level=d.level, role=self.config.role_for(d.level), message=message,
            onset_gateway_us=episode.onset_gateway_us, first_received_us=episode.first_received_us,
            sent_us=self.store.clock()), ""

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Plan and send every ``delivery_interval_s`` (or when woken) until cancelled or ``stop`` is set."""
        stop = stop or asyncio.Event()
        self.store.add_listener(self._on_change)
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - database errors of any driver: retry next time
                    self.counters.errors += 1
                    log.error("escalation delivery round failed: %s: %s", type(exc).__name__, exc)
                waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
                try:
                    await asyncio.wait(waits, timeout=self.config.delivery_interval_s,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
        finally:
            self.store.remove_listener(self._on_change)
            for c in self.channels.values():
                with contextlib.suppress(Exception):
                    await c.aclose()


__all__ = ["DeliveryCounters", "DeliveryWorker"]
