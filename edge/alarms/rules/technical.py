"""Technical alarms: lead off, poor signal, low battery, disconnection, data gaps."""

from __future__ import annotations

from edge.alarms.evidence import EvidenceState
from edge.alarms.rules.base import CLEAR, HOLD, Assessment, Rule, State
from edge.alarms.rules.config import AlarmConfig
from protocol.messages import Priority


class LeadOffRule(Rule):
    """Electrodes flagged off: medium when the analysed lead is lost, else low."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        t = s.technical
        if t is None or not t.lead_off_electrodes:
            return CLEAR
        q = s.analysis_quality
        lost = q is not None and q.lead_off
        return Assessment(State.SET, "lead_off", Priority.MEDIUM if lost else Priority.LOW,
                          f"lead off: {', '.join(t.lead_off_electrodes)}" + ("; ECG analysis suspended" if lost else ""),
                          details={"electrodes": list(t.lead_off_electrodes), "analysis_lead_lost": lost})


class PoorSignalRule(Rule):
    """The analysed lead's SQI below ``poor_sqi`` (not off, not quiet): artefact, analysis suspended."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        q = s.analysis_quality
        if q is None or q.lead_off:
            return CLEAR
        quiet = q.flat or (q.rms_mv is not None and q.rms_mv < c.quiet_rms_mv)
        if not quiet and (q.sqi < c.poor_sqi or q.saturated):
            return Assessment(State.SET, "poor_signal", Priority.LOW,
                              f"poor signal on {c.analysis_lead} (SQI {q.sqi:.2f})",
                              details={"sqi": round(q.sqi, 3), "saturated": q.saturated,
                                       "analysis_suspended": not s.analysable})
        return CLEAR if quiet or q.sqi >= c.poor_clear_sqi else HOLD


class LowBatteryRule(Rule):
    """Battery below ``battery_pct`` (hysteresis up to ``battery_clear_pct``)."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        b = None if s.technical is None else s.technical.battery_pct
        if b is None:
            return HOLD
        if b < c.battery_pct:
            return Assessment(State.SET, "low_battery", Priority.LOW, f"low battery ({b:.0f} %)",
                              details={"battery_pct": b})
        return CLEAR if b >= c.battery_clear_pct else HOLD


class DisconnectedRule(Rule):
    """No data from the device for ``disconnect_s`` (stream time of the gateway's clock)."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        silent = s.now_s - s.data_until_s
        if silent >= c.disconnect_s:
            return Assessment(State.SET, "device_disconnected", Priority.MEDIUM, f"no data for {silent:.0f} s",
                              onset_s=s.data_until_s, details={"no_data_s": round(silent, 1)})
        return CLEAR


class DataGapRule(Rule):
    """A gap of ≥ ``gap_s`` in the samples, held for ``gap_hold_s`` after it ended."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        gaps = [g for g in s.recent_gaps if g.duration_s >= c.gap_s and s.now_s - g.end_s <= c.gap_hold_s]
        if not gaps:
            return CLEAR
        g = gaps[0]
        return Assessment(State.SET, "data_gap", Priority.LOW, f"{g.duration_s:.1f} s of data missing",
                          onset_s=g.start_s, details={"gap_s": round(g.duration_s, 3), "gaps": len(gaps)})
