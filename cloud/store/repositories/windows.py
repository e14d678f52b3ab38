"""ECG windows: the wire payload kept verbatim, with its metadata indexed for queries.

A window arrives three ways: as a :class:`~cloud.store.records.ReceivedWindow` (the ingest already
decoded and validated the payload: nothing is decoded here), as payload bytes from any other
caller (decoded here, once, so corrupt data raises the protocol's error and stores nothing), or as
an :class:`~protocol.window_payload.EcgWindow` (encoded here). Rows are written by
:func:`cloud.store.writes.commit` (``INSERT … ON CONFLICT (window_id) DO NOTHING``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from cloud.errors import NotFound
from cloud.store.checks import canonical_uuid, check_range
from cloud.store.database import Database
from cloud.store.records import ReceivedWindow, WindowMeta
from cloud.store.schema import WindowRow
from cloud.store.writes import Write, commit
from protocol.leads import lead_mask, leads_from_mask
from protocol.window_payload import EcgWindow, decode_window, encode_window

WindowInput = ReceivedWindow | EcgWindow | bytes | bytearray | memoryview
"""What the store accepts as a window."""

_META_COLS = (
    WindowRow.seq, WindowRow.window_id, WindowRow.patient_id, WindowRow.device_id, WindowRow.t0_us,
    WindowRow.fs_hz, WindowRow.lead_mask, WindowRow.reconstructed_mask, WindowRow.n_samples, WindowRow.lsb_nv,
    WindowRow.has_uncertainty, func.length(WindowRow.payload).label("payload_bytes"), WindowRow.received_us,
)


def window_meta(row: Any) -> WindowMeta:
    return WindowMeta(
        seq=row.seq, window_id=row.window_id, patient_id=row.patient_id, device_id=row.device_id, t0_us=row.t0_us,
        fs_hz=row.fs_hz, leads=leads_from_mask(row.lead_mask), reconstructed=leads_from_mask(row.reconstructed_mask),
        n_samples=row.n_samples, lsb_nv=row.lsb_nv, has_uncertainty=bool(row.has_uncertainty),
        payload_bytes=int(row.payload_bytes), received_us=row.received_us,
    )


def _decoded(window: WindowInput) -> tuple[EcgWindow, bytes]:
    """The window and its payload bytes, decoding or encoding only what the caller did not give."""
    if isinstance(window, ReceivedWindow):
        return window.window, bytes(window.payload)
    if isinstance(window, EcgWindow):
        return window, encode_window(window)
    payload = bytes(window)
    return decode_window(payload), payload


class WindowRepository:
    """Windows (``store.windows``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def prepare(self, window: WindowInput, now: int) -> Write:
        """The checked insert of one window; the protocol's error (counted) when it is invalid."""
        try:
            decoded, payload = _decoded(window)
            check_range(decoded.t0_us, "t0_us")
        except ValueError:  # ProtocolError and its subclasses are ValueErrors
            self.db.counters.windows_rejected += 1
            raise
        return Write("window", self.db.insert(WindowRow).values(
            window_id=str(uuid.UUID(decoded.window_id)), patient_id=decoded.patient_id, device_id=decoded.device_id,
            t0_us=decoded.t0_us, fs_hz=decoded.fs_hz, lead_mask=lead_mask(decoded.leads),
            reconstructed_mask=lead_mask(decoded.reconstructed), n_samples=decoded.n_samples,
            lsb_nv=decoded.lsb_nv, has_uncertainty=decoded.uncertainty is not None, payload=payload,
            received_us=now,
        ).on_conflict_do_nothing(index_elements=[WindowRow.window_id]).returning(WindowRow.seq))

    async def store_window(self, window: WindowInput, *, received_us: int | None = None) -> bool:
        """Store a window (see the module docstring for the three forms). True if new, False if its
        ``window_id`` is already stored. Invalid data raises the protocol's error (FrameError,
        SchemaError, …) and stores nothing."""
        now = self.db.clock() if received_us is None else received_us
        return (await commit(self.db, [self.prepare(window, now)]))[0]

    async def windows_for_patient(self, patient_id: str, t0_from: int | None = None, t0_to: int | None = None,
                                  *, limit: int | None = None) -> list[WindowMeta]:
        """Metadata of a patient's windows with ``t0_from <= t0_us < t0_to``, in time order."""
        q = select(*_META_COLS).where(WindowRow.patient_id == patient_id)
        if t0_from is not None:
            q = q.where(WindowRow.t0_us >= t0_from)
        if t0_to is not None:
            q = q.where(WindowRow.t0_us < t0_to)
        q = q.order_by(WindowRow.t0_us, WindowRow.seq)
        if limit is not None:
            q = q.limit(limit)
        async with self.db.sessions() as s:
            return [window_meta(r) for r in (await s.execute(q)).all()]

    async def list_windows(self, *, patient_id: str | None = None, t0_from: int | None = None,
                           t0_to: int | None = None, limit: int = 100) -> list[WindowMeta]:
        """Window metadata with ``t0_from <= t0_us < t0_to``, newest first."""
        q = select(*_META_COLS)
        if patient_id is not None:
            q = q.where(WindowRow.patient_id == patient_id)
        if t0_from is not None:
            q = q.where(WindowRow.t0_us >= t0_from)
        if t0_to is not None:
            q = q.where(WindowRow.t0_us < t0_to)
        q = q.order_by(WindowRow.t0_us.desc(), WindowRow.seq.desc()).limit(limit)
        async with self.db.sessions() as s:
            return [window_meta(r) for r in (await s.execute(q)).all()]

    async def window_meta(self, window_id: str) -> WindowMeta:
        q = select(*_META_COLS).where(WindowRow.window_id == canonical_uuid(window_id, "window_id"))
        async with self.db.sessions() as s:
            row = (await s.execute(q)).first()
        if row is None:
            raise NotFound(f"window {window_id} is not stored")
        return window_meta(row)

    async def window_payload(self, window_id: str) -> bytes:
        """The stored payload bytes exactly as received (protocol window schema)."""
        async with self.db.sessions() as s:
            payload = await s.scalar(select(WindowRow.payload).where(
                WindowRow.window_id == canonical_uuid(window_id, "window_id")))
        if payload is None:
            raise NotFound(f"window {window_id} is not stored")
        return bytes(payload)

    async def load_window(self, window_id: str) -> EcgWindow:
        """The stored window, decoded."""
        return decode_window(await self.window_payload(window_id))

    async def count_windows(self) -> int:
        async with self.db.sessions() as s:
            return int(await s.scalar(select(func.count()).select_from(WindowRow)) or 0)

    async def last_window_received(self, patient_ids: Sequence[str]) -> dict[str, int]:
        """``received_us`` of each named patient's newest window (by ``t0_us``; ``ix_windows_patient_t0``)."""
        out: dict[str, int] = {}
        async with self.db.sessions() as s:
            for pid in sorted(set(patient_ids)):
                t = await s.scalar(select(WindowRow.received_us).where(WindowRow.patient_id == pid)
                                   .order_by(WindowRow.t0_us.desc(), WindowRow.seq.desc()).limit(1))
                if t is not None:
                    out[pid] = int(t)
        return out


__all__ = ["WindowInput", "WindowRepository", "window_meta"]
