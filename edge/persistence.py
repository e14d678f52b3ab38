"""Restart safety: each device session's alarm episodes and window grid, kept with the outbox.

A kill -9 of the gateway must neither raise an ongoing episode a second time (under a new id, so
the cloud would show two) nor lose or repeat window slots. :class:`SessionPersistence` writes each
session's :meth:`~edge.ingest.session.DeviceSession.export_state` (open and latched episodes with
their ids, message counters and acknowledgements; the window grid's stream key and next slot not yet
uplinked; stream time on the device clock) into the outbox's ``session_state`` table, in the same
transaction as the alert or windows that changed it (:class:`~edge.agent.OutboxSink` asks
:meth:`SessionPersistence.pending` for the rows; a session's row is rewritten only when its episodes
or grid changed, or every ``heartbeat_s`` of wall or stream time, so its age says the gateway was
alive and its stream time is recent).

When a session for the same device and patient starts again (:meth:`SessionPersistence.restore`,
called by the agent as it creates the session), the state is given back to it unless it is older
than ``max_age_s`` (``[uplink] restore_max_age_s``): stale state is dropped with a log line. An
episode whose condition is still present then goes on under its old id (no new ``raised``); one whose
condition is gone clears normally (``cleared`` with the old id).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from edge.ingest.session import DeviceSession
from edge.uplink.outbox import Outbox, SessionStateRow

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_S = 600.0
"""Saved state older than this is not restored (the patient's situation may have changed)."""


class SessionPersistence:
    """Saves and restores sessions' restart state in ``outbox`` (see the module docstring)."""

    def __init__(self, outbox: Outbox, *, max_age_s: float = DEFAULT_MAX_AGE_S, heartbeat_s: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        if max_age_s <= 0 or heartbeat_s <= 0:
            raise ValueError("max_age_s and heartbeat_s must be positive")
        self.outbox = outbox
        self.max_age_s = float(max_age_s)
        self.heartbeat_s = float(heartbeat_s)
        self.clock = clock
        self.restored = 0
        """Sessions restored from saved state."""
        self.stale = 0
        """Saved states dropped as older than ``max_age_s``."""
        self._last: dict[tuple[str, str], tuple[str, float]] = {}   # (device, patient) → (key, when written)

    def restore(self, session: DeviceSession) -> bool:
        """Give ``session`` (new, before its first frame) the state its device left; whether there was one."""
        row = self.outbox.load_state(session.device_id, session.patient_id)
        if row is None:
            return False
        saved_us, text = row
        age_s = max(0.0, self.clock() - saved_us * 1e-6)
        if age_s > self.max_age_s:
            self.stale += 1
            log.warning("session_state_stale device_id=%s patient_id=%s age_s=%.0f max_age_s=%.0f: dropped, "
                        "not restored", session.device_id, session.patient_id, age_s, self.max_age_s)
            self.outbox.drop_state(session.device_id, session.patient_id)
            return False
        try:
            data: dict[str, Any] = json.loads(text)
            episodes = session.restore_state(data, age_s)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("session_state_unreadable device_id=%s patient_id=%s: %s; not restored",
                      session.device_id, session.patient_id, exc)
            return False
        self.restored += 1
        log.warning("session_state_restored device_id=%s patient_id=%s age_s=%.1f episodes=%d",
                    session.device_id, session.patient_id, age_s, episodes)
        return True

    def pending(self, sessions: Iterable[DeviceSession]) -> list[SessionStateRow]:
        """Rows to write now: sessions whose episodes or grid changed since their last row, or whose row
        is older than ``heartbeat_s``."""
        now = self.clock()
        rows: list[SessionStateRow] = []
        for s in sessions:
            state = s.export_state()
            key = json.dumps([state["engine"], state["grid"], int(state["stream_now_s"] // self.heartbeat_s)],
                             sort_keys=True, default=str)
            ident = (s.device_id, s.patient_id)
            last = self._last.get(ident)
            if last is not None and last[0] == key and now - last[1] < self.heartbeat_s:
                continue
            self._last[ident] = (key, now)
            rows.append((s.device_id, s.patient_id, json.dumps(state, default=str)))
        return rows
