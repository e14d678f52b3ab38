"""The latest status of each device and gateway (battery, leads, outbox depth, …).

Rows are upserted only when the incoming report is at least as new, by the sender's own clock, as
the stored one, so an outbox replay of old heartbeats cannot roll the dashboard back. (A device whose
clock restarts from zero after a reboot therefore needs its row reset; the ingest worker knows about
reboots, the store does not.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from cloud.store.checks import check_range
from cloud.store.database import Database
from cloud.store.schema import DeviceStatusRow, GatewayStatusRow
from protocol.messages import DeviceStatus, GatewayStatus, encode_message


def _device_status(r: DeviceStatusRow) -> DeviceStatus:
    return DeviceStatus(device_id=r.device_id, t_device_us=r.t_device_us, battery_pct=r.battery_pct,
                        connected=bool(r.connected), lead_off=tuple(r.lead_off), profile=r.profile,
                        firmware=r.firmware)


class StatusRepository:
    """Device and gateway status (``store.status``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def upsert_device_status(self, status: DeviceStatus, *, received_us: int | None = None) -> bool:
        """Keep the device's latest status. True if stored, False if an equally new or newer one (by
        the device clock) is already there."""
        encode_message(status)
        check_range(status.t_device_us, "t_device_us")
        stmt = self.db.insert(DeviceStatusRow).values(
            device_id=status.device_id, t_device_us=status.t_device_us, battery_pct=status.battery_pct,
            connected=status.connected, lead_off=list(status.lead_off), profile=status.profile,
            firmware=status.firmware, received_us=self.db.clock() if received_us is None else received_us,
        )
        t, x = DeviceStatusRow.__table__.c, stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.device_id],
            set_={c: x[c] for c in ("t_device_us", "battery_pct", "connected", "lead_off", "profile", "firmware",
                                    "received_us")},
            where=t.t_device_us < x.t_device_us,
        ).returning(t.device_id)
        return await self._write(stmt)

    async def latest_device_status(self, device_id: str) -> DeviceStatus | None:
        async with self.db.sessions() as s:
            r = await s.get(DeviceStatusRow, device_id)
        return None if r is None else _device_status(r)

    async def device_statuses(self, device_ids: Sequence[str] | None = None, *, received_since_us: int | None = None
                              ) -> dict[str, tuple[DeviceStatus, int]]:
        """Latest status and its ``received_us`` per device (all devices, or those named; only those
        received at or after ``received_since_us`` when given)."""
        q = select(DeviceStatusRow)
        if device_ids is not None:
            q = q.where(DeviceStatusRow.device_id.in_(list(device_ids)))
        if received_since_us is not None:
            q = q.where(DeviceStatusRow.received_us >= received_since_us)
        async with self.db.sessions() as s:
            rows = (await s.scalars(q)).all()
        return {r.device_id: (_device_status(r), r.received_us) for r in rows}

    async def upsert_gateway_status(self, status: GatewayStatus, *, received_us: int | None = None) -> bool:
        """Keep the gateway's latest heartbeat (by gateway clock); False if not newer than the stored one."""
        encode_message(status)
        for name in ("t_gateway_us", "streams", "outbox_depth"):
            check_range(getattr(status, name), name)
        stmt = self.db.insert(GatewayStatusRow).values(
            gateway_id=status.gateway_id, t_gateway_us=status.t_gateway_us, streams=status.streams,
            outbox_depth=status.outbox_depth, software=status.software,
            received_us=self.db.clock() if received_us is None else received_us,
        )
        t, x = GatewayStatusRow.__table__.c, stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.gateway_id],
            set_={c: x[c] for c in ("t_gateway_us", "streams", "outbox_depth", "software", "received_us")},
            where=t.t_gateway_us < x.t_gateway_us,
        ).returning(t.gateway_id)
        return await self._write(stmt)

    async def latest_gateway_status(self, gateway_id: str) -> GatewayStatus | None:
        async with self.db.sessions() as s:
            r = await s.get(GatewayStatusRow, gateway_id)
        if r is None:
            return None
        return GatewayStatus(gateway_id=r.gateway_id, t_gateway_us=r.t_gateway_us, streams=r.streams,
                             outbox_depth=r.outbox_depth, software=r.software)

    async def _write(self, stmt: Any) -> bool:
        async with self.db.sessions.begin() as s:
            updated = (await s.execute(stmt)).first() is not None
        if updated:
            self.db.counters.status_updated += 1
            self.db.changed("status")
        else:
            self.db.counters.status_stale += 1
        return updated


__all__ = ["StatusRepository"]
