"""The alarm engine of one device/patient: rules → episodes → :class:`protocol.messages.Alert`.

Episode life cycle, per rule family, all in stream time (s):

- **persistence**: an assessment must stay SET for the rule's ``persist_s`` (clinical rules: counting
  only analysable time, after ``unusable_until_s``) before the episode is raised; counted from the
  assessment's ``onset_s`` when the rule knows when its condition began (a silence, a VT run; never
  before an explicit :meth:`AlarmEngine.clear`), else from the first SET. The episode's onset is that
  start, or the rule's earlier ``began_s`` estimate (the start of an irregular RR run), within the
  same bounds;
- **suppression**: while the analysed lead is not analysable (off, saturated, artefact, gap,
  disconnected), clinical rules accumulate nothing and raise nothing — the technical alarm says why —
  and an active clinical episode is neither advanced nor cleared by artefact;
- **hysteresis**: HOLD (between the set and clear thresholds) resets both timers; the episode clears
  only after CLEAR held for ``clear_s``;
- **de-duplication**: one live episode per family at a time: a condition that stays true raises
  once; a new episode (new id) needs the old one's condition cleared;
- **escalation**: a SET of higher priority within an active episode (pause → asystole) is sent as an
  ``escalated`` message with the new type and priority, same episode;
- **latching** (IEC 60601-1-8: latching, never swallowing a recurrence): clinical episodes of a
  priority in ``AlarmConfig.latching`` (high) stay shown after their condition ends, as *latched*
  episodes (:attr:`AlarmEngine.latched`), until :meth:`AlarmEngine.acknowledge` (staff, through the
  cloud's ack downlink) or :meth:`AlarmEngine.clear`; nothing is sent when the condition ends, so the
  cloud keeps the episode active too. A latched episode no longer holds its family: a new episode of
  the same condition raises a new alarm with a new id even while the old one waits for its
  acknowledgement. An episode acknowledged while its condition is still present clears by itself when
  the condition ends;
- **supersession**: a rule is not raised while a family in its ``superseded_by`` is active.

Every message is an :class:`~protocol.messages.Alert` with ``details['event']`` one of
:class:`AlarmEvent` and ``details['episode_id']``, so the cloud, which de-duplicates by ``alert_id``,
sees raise, escalation and clear as three messages of one episode.

**Identity.** The episode id is a random UUID 4 drawn when the episode opens and kept with it (the
raising message's ``alert_id`` is the episode id). Each later message of the episode has the id UUID 5
(episode id, ``"{event}|{seq}"``), ``seq`` counting the episode's messages, so ids never collide across
episodes: a device whose clock restarts (a reboot, a replayed scenario or record) or a restarted
gateway opens new episodes with new ids, and the cloud stores every one of them. Redelivery of the
*same* message is idempotent because the outbox stores the encoded message: a resend carries the same
id. (Before: ids were UUID 5 of patient, device, family and the device-clock onset, so a replay's
alerts collided with the first run's and the cloud dropped them as duplicates.)
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from edge.alarms.evidence import BeatEvidence, ClockMap, EvidenceState, TechnicalState, WindowEvidence
from edge.alarms.rules import (
    PRIORITY_RANK,
    RULES_VERSION,
    AlarmConfig,
    Assessment,
    Rule,
    State,
    default_rules,
)
from protocol.messages import Alert, AlertCategory, Priority


class AlarmEvent(StrEnum):
    """``details['event']`` of an alert message."""

    RAISED = "raised"
    ESCALATED = "escalated"
    CLEARED = "cleared"


@dataclass
class _Episode:
    episode_id: str
    """Random UUID 4 drawn when the episode opened."""
    family: str
    assessment: Assessment
    onset_s: float
    window_id: str | None
    model_versions: dict[str, str]
    latching: bool
    acknowledged: bool = False
    condition_ended: bool = False
    messages: int = 0
    """Messages sent for this episode so far (the ``seq`` of its next message id)."""


@dataclass
class _Track:
    pending_since: float | None = None
    clear_since: float | None = None
    episode: _Episode | None = None
    rearmed_s: float = float("-inf")
    """Explicit :meth:`AlarmEngine.clear` time: persistence counts from no earlier, whatever onset a rule reports."""
    ended_s: float = float("-inf")
    """When the family's last episode's condition ended (cleared or latched): a new episode's onset is no earlier."""


class AlarmEngine:
    """Alarms of one device worn by one patient; feed it with :meth:`update` in stream-time order."""

    def __init__(self, patient_id: str, device_id: str, clock: ClockMap, config: AlarmConfig | None = None,
                 rules: Iterable[Rule] | None = None) -> None:
        self.patient_id, self.device_id, self.clock = patient_id, device_id, clock
        self.config = c = config or AlarmConfig()
        self.rules = tuple(rules) if rules is not None else default_rules(c)
        self.state = EvidenceState(c.analysis_lead, suppress_sqi=c.suppress_sqi, quiet_rms_mv=c.quiet_rms_mv,
                                   recovery_s=c.quality_recovery_s, irregular_threshold=c.af_irregularity,
                                   irregular_hold=c.af_hold_irregularity, st_baseline_windows=c.st_baseline_windows)
        self._tracks = {r.family: _Track() for r in self.rules}
        self._latched: dict[str, _Episode] = {}
        """Latched episodes whose condition has ended, waiting for an acknowledgement, by episode id (oldest first)."""

    # -- public -------------------------------------------------------------------------------

    def update(self, now_s: float, *, beats: BeatEvidence | None = None, windows: Iterable[WindowEvidence] = (),
               technical: TechnicalState | None = None) -> list[Alert]:
        """Add the evidence that arrived by stream time ``now_s`` (s) and return the messages it causes.

        Give a span's ``technical`` state no later than its beats: beats on a lead later found bad
        must not have counted. Call it also when nothing arrived, so silence (disconnection) is seen.
        """
        s = self.state
        if technical is not None:
            s.add_technical(technical)
        if beats is not None:
            s.add_beats(beats)
        for w in windows:
            s.add_window(w)
        s.now_s = max(s.now_s, now_s, s.data_until_s)
        out: list[Alert] = []
        for rule in self.rules:
            out += self._step(rule, rule.assess(s, self.config))
        return out

    @property
    def active(self) -> dict[str, Alert]:
        """Shown episodes by family, as their latest state (type and priority after escalation): the
        family's live episode, else its latest latched one (:attr:`shown` lists every episode)."""
        out = {ep.family: self._state(ep) for ep in self._latched.values()}
        out.update({f: self._state(t.episode) for f, t in self._tracks.items() if t.episode is not None})
        return out

    @property
    def latched(self) -> dict[str, Alert]:
        """Latched episodes whose condition has ended, waiting for an acknowledgement, by episode id."""
        return {eid: self._state(ep) for eid, ep in self._latched.items()}

    @property
    def shown(self) -> list[Alert]:
        """Every episode shown now, one entry each: the live episodes and the latched ones."""
        return [*(self._state(t.episode) for t in self._tracks.values() if t.episode is not None),
                *(self._state(ep) for ep in self._latched.values())]

    def has_episode(self, episode_id: str) -> bool:
        """Whether ``episode_id`` is shown here now (live or latched)."""
        return episode_id in self._latched or any(
            t.episode is not None and t.episode.episode_id == episode_id for t in self._tracks.values())

    def acknowledge(self, episode_id: str) -> list[Alert]:
        """Staff acknowledged an episode: a latched one whose condition has ended clears now (its
        ``cleared`` message, reason ``acknowledged``); one still present clears by itself when its
        condition ends. Unknown ids (already cleared, another device's) and repeated acks are ignored."""
        ep = self._latched.pop(episode_id, None)
        if ep is not None:
            return [self._cleared(ep, "acknowledged")]
        for t in self._tracks.values():
            if t.episode is not None and t.episode.episode_id == episode_id:
                t.episode.acknowledged = True
        return []

    def clear(self, family: str) -> list[Alert]:
        """Clear a family's episodes now, latched ones included (the caller's explicit reset); the
        condition must then persist afresh to raise a new episode."""
        t = self._tracks[family]
        t.pending_since = None
        t.rearmed_s = self.state.now_s
        out = [self._cleared(self._latched.pop(eid), "caller")
               for eid in [e for e, ep in self._latched.items() if ep.family == family]]
        return out if t.episode is None else [*out, self._close(t, "caller")]

    # -- restart safety (edge.persistence) ------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """Open and latched episodes as JSON-able data (ids, family, state, message counter, ack), and
        the patient's ST baseline (or the windows learned towards it so far)."""
        s = self.state
        return {
            "open": [_episode_data(t.episode) for t in self._tracks.values() if t.episode is not None],
            "latched": [_episode_data(ep) for ep in self._latched.values()],
            "ended_s": {f: t.ended_s for f, t in self._tracks.items() if math.isfinite(t.ended_s)},
            "st_baseline": {"baseline_mv": s.st_baseline, "learning": s.st_learning},
        }

    def import_state(self, data: dict[str, Any]) -> int:
        """Restore what :meth:`export_state` gave (a restarted gateway): open episodes go on under their
        ids (a condition still present raises nothing new; one that is gone clears with the old id),
        latched ones wait for their acknowledgement. Families this engine does not know are skipped.
        Returns how many episodes were restored."""
        n = 0
        for item in data.get("open", ()):
            t = self._tracks.get(str(item["family"]))
            if t is not None and t.episode is None:
                t.episode = _episode_from(item)
                n += 1
        for item in data.get("latched", ()):
            if str(item["family"]) in self._tracks:
                ep = _episode_from(item)
                self._latched[ep.episode_id] = ep
                n += 1
        for family, ended in dict(data.get("ended_s", {})).items():
            if family in self._tracks:
                self._tracks[family].ended_s = float(ended)
        st = dict(data.get("st_baseline") or {})          # a restarted gateway does not learn the baseline anew
        if st.get("baseline_mv") is not None:
            self.state.set_st_baseline({str(k): float(v) for k, v in dict(st["baseline_mv"]).items()})
        elif st.get("learning"):
            self.state.st_learning = [{str(k): float(v) for k, v in dict(w).items()} for w in st["learning"]]
        return n

    # -- episode machine ------------------------------------------------------------------------

    def _step(self, rule: Rule, a: Assessment) -> list[Alert]:
        s, t = self.state, self._tracks[rule.family]
        clinical = rule.category is AlertCategory.CLINICAL
        if clinical and not s.analysable:
            t.pending_since = t.clear_since = None
            return []
        if a.state is State.HOLD:
            t.pending_since = t.clear_since = None
            return []
        if a.state is State.CLEAR:
            t.pending_since = None
            if t.episode is None:
                return []
            if t.clear_since is None:
                t.clear_since = s.now_s
            if s.now_s - t.clear_since < rule.clear_s:
                return []
            ep = t.episode
            if ep.latching and not ep.acknowledged:
                ep.condition_ended = True          # stays shown, latched; the family is free for a recurrence
                self._latched[ep.episode_id] = ep
                t.episode, t.clear_since, t.ended_s = None, None, s.now_s
                return []
            return [self._close(t, "condition_ended")]
        # SET
        t.clear_since = None
        if t.episode is not None:
            return self._escalate(t.episode, a)
        if any(self._tracks[f].episode is not None for f in rule.superseded_by if f in self._tracks):
            t.pending_since = None
            return []
        if t.pending_since is None:
            t.pending_since = s.now_s
        start = max(t.pending_since if a.onset_s is None else a.onset_s, t.rearmed_s, t.ended_s)
        if clinical:
            start = max(start, s.unusable_until_s)
        persist = rule.persist_s if a.persist_s is None else a.persist_s
        if s.now_s - start < persist:
            return []
        if a.began_s is not None:
            start = max(min(start, a.began_s), t.rearmed_s, t.ended_s,
                        s.unusable_until_s if clinical else -float("inf"))
        return [self._raise(rule, t, a, start)]

    def _raise(self, rule: Rule, t: _Track, a: Assessment, onset_s: float) -> Alert:
        window = self.state.window_for(onset_s)
        window_id = a.window_id or (None if window is None else window.window_id)
        versions = {"alarm_rules": RULES_VERSION, **({} if window is None else dict(window.model_versions))}
        latching = rule.category is AlertCategory.CLINICAL and a.priority in self.config.latching
        t.episode = _Episode(str(uuid.uuid4()), rule.family, a, onset_s, window_id, versions, latching)
        t.pending_since = None
        return self._message(t.episode, AlarmEvent.RAISED)

    def _escalate(self, ep: _Episode, a: Assessment) -> list[Alert]:
        if PRIORITY_RANK[a.priority] <= PRIORITY_RANK[ep.assessment.priority]:
            return []
        ep.assessment = a
        ep.latching = ep.latching or (self._category(ep.family) is AlertCategory.CLINICAL
                                      and a.priority in self.config.latching)
        return [self._message(ep, AlarmEvent.ESCALATED)]

    def _close(self, t: _Track, reason: str) -> Alert:
        assert t.episode is not None
        ep = t.episode
        t.episode, t.clear_since = None, None
        t.ended_s = self.state.now_s
        return self._cleared(ep, reason)

    def _cleared(self, ep: _Episode, reason: str) -> Alert:
        return self._message(ep, AlarmEvent.CLEARED, extra={"reason": reason})

    def _category(self, family: str) -> AlertCategory:
        return next(r.category for r in self.rules if r.family == family)

    def _message(self, ep: _Episode, event: AlarmEvent, *, extra: dict[str, Any] | None = None) -> Alert:
        """The episode's next message: the raise carries the episode id itself, later ones UUID 5 of
        (episode id, event and sequence number)."""
        seq, ep.messages = ep.messages, ep.messages + 1
        alert_id = ep.episode_id if seq == 0 else str(uuid.uuid5(uuid.UUID(ep.episode_id), f"{event}|{seq}"))
        return self._alert(ep, alert_id, event, extra)

    def _state(self, ep: _Episode) -> Alert:
        """An episode's current state as an alert (id: the episode id; not a message to send)."""
        return self._alert(ep, ep.episode_id, AlarmEvent.RAISED, None)

    def _alert(self, ep: _Episode, alert_id: str, event: AlarmEvent, extra: dict[str, Any] | None) -> Alert:
        a = ep.assessment
        onset_device_us = self.clock.device_us(ep.onset_s)
        details: dict[str, Any] = {
            "event": str(event), "episode_id": ep.episode_id, "family": ep.family,
            "onset_s": round(ep.onset_s, 3), "at_s": round(self.state.now_s, 3), **dict(a.details), **(extra or {}),
        }
        if ep.condition_ended:
            details["latched"] = True
        return Alert(alert_id=alert_id, patient_id=self.patient_id, device_id=self.device_id,
                     alert_type=a.alert_type, category=self._category(ep.family), priority=a.priority,
                     onset_gateway_us=max(0, self.clock.gateway_us(ep.onset_s)),
                     onset_device_us=max(0, onset_device_us), window_id=ep.window_id, message=a.message,
                     model_versions=dict(ep.model_versions), reconstructed_leads=dict(a.reconstructed_leads),
                     details=details)


def _episode_data(ep: _Episode) -> dict[str, Any]:
    a = ep.assessment
    return {
        "episode_id": ep.episode_id, "family": ep.family, "onset_s": ep.onset_s, "window_id": ep.window_id,
        "model_versions": dict(ep.model_versions), "latching": ep.latching, "acknowledged": ep.acknowledged,
        "condition_ended": ep.condition_ended, "messages": ep.messages,
        "assessment": {"state": a.state.value, "alert_type": a.alert_type, "priority": a.priority.value,
                       "message": a.message, "window_id": a.window_id,
                       "reconstructed_leads": dict(a.reconstructed_leads), "details": dict(a.details)},
    }


def _episode_from(d: dict[str, Any]) -> _Episode:
    a = d["assessment"]
    assessment = Assessment(State(a["state"]), str(a["alert_type"]), Priority(a["priority"]), str(a["message"]),
                            window_id=a.get("window_id"), reconstructed_leads=dict(a.get("reconstructed_leads", {})),
                            details=dict(a.get("details", {})))
    return _Episode(str(d["episode_id"]), str(d["family"]), assessment, float(d["onset_s"]), d.get("window_id"),
                    {str(k): str(v) for k, v in dict(d.get("model_versions", {})).items()}, bool(d["latching"]),
                    bool(d.get("acknowledged", False)), bool(d.get("condition_ended", False)), int(d.get("messages", 1)))
