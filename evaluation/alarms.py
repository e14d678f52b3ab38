"""Alarm evaluation: real records replayed through the whole edge path, alarms scored against references.

Records are found and their references read by :mod:`evaluation.references` (CPSC 2021 AF
episodes as :mod:`models.data.cpsc2021` parses them; PhysioNet/CinC 2015 alarm headers), turned
into wearable frames and replayed through a fresh edge agent by :mod:`evaluation.replay`; this
module scores what the agent raised.

**Scoring, CPSC 2021 (AF)**. A reference AF episode runs from its ``(AFIB`` (or ``(AFL``) beat to
the ``(N`` beat that closes it, or to the end of the record. An AF alarm is a message
with ``alert_type == "af"`` and event ``raised``; its onset is the engine's episode onset (the
start of the persistence period, so the 30-s persistence delay does not push it out of a short
episode). A reference episode is *detected* when an AF alarm's onset lies in
``[start − tolerance_s, end + tolerance_s]``; an AF alarm whose onset lies in no such interval is a
*false alarm*. Episode sensitivity = detected / episodes; false alarms per hour of non-AF signal
(record time outside every reference episode). Also reported: ``detected_overlap`` (an AF alarm
episode — from its onset to its clearing, or the record end — overlaps the reference episode: the
EC57-style criterion, which credits an alarm that stays up across a short sinus interruption, and
also one whose onset came before the annotated start), the sensitivity over episodes of ≥ 30 s alone
(``episodes_30s`` / ``detected_30s``, also per record class: the guideline definition of an AF
episode, and the shortest a 30-s persistence can confirm inside it) and each detection's delay
(raise time − episode start; median and maximum over the detected episodes in ``delay_s``).
The record class (non AF / paroxysmal / persistent) is the header comment.

**Scoring, PhysioNet/CinC 2015**. For a false alarm the edge must not raise that alarm type (raised
or escalated to) anywhere in the record; for a true alarm it must. Every alert raised is listed per
record.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from edge.agent import AgentConfig
from evaluation.progress import NoProgress, Progress
from evaluation.references import (
    CHALLENGE2015_ALARMS,
    AfEpisode,
    af_class,
    af_episodes,
    challenge2015_alarm,
    find_records,
)
from evaluation.replay import ReplayConfig, ReplayResult, read_record, replay
from protocol.messages import Alert

__all__ = ["evaluate", "format_table", "score_af", "score_alarm_record"]

AF_ALERT = "af"
ACTIVE_EVENTS = ("raised", "escalated")
CLINICAL_EPISODE_S = 30.0
"""Shortest AF episode guidelines count (ESC 2020: an episode lasts ≥ 30 s); also reported on its own."""


def _t(alert: Alert, key: str) -> float:
    return float(alert.details.get(key, math.nan))


def _alert_entry(a: Alert) -> dict[str, Any]:
    return {"type": a.alert_type, "event": a.details.get("event"), "priority": str(a.priority),
            "onset_s": a.details.get("onset_s"), "at_s": a.details.get("at_s"), "message": a.message}


def _af_alarms(alerts: Sequence[Alert], end_s: float) -> list[dict[str, float]]:
    """AF alarm episodes: onset, raise time and the time they cleared (or the record end)."""
    cleared = {a.details.get("episode_id"): _t(a, "at_s") for a in alerts
               if a.details.get("event") == "cleared" and a.details.get("family") == AF_ALERT}
    out = []
    for a in alerts:
        if a.alert_type == AF_ALERT and a.details.get("event") == "raised":
            out.append({"onset_s": _t(a, "onset_s"), "at_s": _t(a, "at_s"),
                        "cleared_s": cleared.get(a.details.get("episode_id") or a.alert_id, end_s)})
    return out


def score_af(name: str, klass: str, episodes: Sequence[AfEpisode], result: ReplayResult, duration_s: float,
             tolerance_s: float = 0.0) -> dict[str, Any]:
    """One CPSC 2021 record's AF scores (see the module docstring)."""
    alarms = _af_alarms(result.alerts, duration_s)
    eps = []
    for e in episodes:
        hits = [a for a in alarms if e.start_s - tolerance_s <= a["onset_s"] <= e.end_s + tolerance_s]
        overlap = [a for a in alarms if a["onset_s"] <= e.end_s + tolerance_s and a["cleared_s"] >= e.start_s]
        eps.append({"start_s": round(e.start_s, 3), "end_s": round(e.end_s, 3),
                    "clinical": e.end_s - e.start_s >= CLINICAL_EPISODE_S, "detected": bool(hits),
                    "detected_overlap": bool(overlap),
                    "delay_s": round(hits[0]["at_s"] - e.start_s, 2) if hits else None})
    false = [a for a in alarms
             if not any(e.start_s - tolerance_s <= a["onset_s"] <= e.end_s + tolerance_s for e in episodes)]
    af_s = sum(min(e.end_s, duration_s) - e.start_s for e in episodes)
    others: dict[str, int] = {}
    for a in result.alerts:
        if a.alert_type != AF_ALERT and a.details.get("event") in ACTIVE_EVENTS:
            others[a.alert_type] = others.get(a.alert_type, 0) + 1
    return {
        "class": klass, "duration_s": round(duration_s, 2), "af_s": round(af_s, 2),
        "non_af_s": round(max(0.0, duration_s - af_s), 2), "episodes": len(episodes),
        "detected": sum(e["detected"] for e in eps), "detected_overlap": sum(e["detected_overlap"] for e in eps),
        "episodes_30s": sum(e["clinical"] for e in eps),
        "detected_30s": sum(e["detected"] and e["clinical"] for e in eps),
        "false_alarms": len(false), "reference_episodes": eps,
        "af_alarms": [{k: round(v, 3) for k, v in a.items()} for a in alarms], "other_alarms": others,
        "stream": result.stream,
    }


def score_alarm_record(name: str, alarm: str, true_alarm: bool, result: ReplayResult) -> dict[str, Any]:
    """One PhysioNet 2015 record: did the edge raise (or not) the documented alarm?"""
    target = CHALLENGE2015_ALARMS[alarm]
    raised = [_alert_entry(a) for a in result.alerts if a.details.get("event") in ACTIVE_EVENTS]
    hit = any(r["type"] == target for r in raised)
    key = "must_raise" if true_alarm else "must_not_raise"
    return {"alarm": alarm, key: target, "raised": raised, "ok": hit if true_alarm else not hit,
            "stream": result.stream}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def evaluate(root: str | os.PathLike[str], config: ReplayConfig | None = None,
             agent_config: AgentConfig | None = None, *, progress: Progress | None = None) -> dict[str, Any]:
    """Replay and score every record under ``root``; returns the JSON report (see the module docstring).

    Raises ``ValueError`` when no CPSC 2021 or PhysioNet 2015 record is found. ``progress`` hears of
    the stream time replayed and of each record done (see :mod:`evaluation.progress`).
    """
    c = config or ReplayConfig()
    found = list(find_records(root))
    if not found:
        raise ValueError(f"no CPSC 2021 (AF class + .atr) or PhysioNet/CinC 2015 alarm records under {root}")
    progress = progress or NoProgress()
    progress.start(len(found))
    per_af: dict[str, Any] = {}
    false_alarm: dict[str, Any] = {}
    true_alarm: dict[str, Any] = {}
    try:
        for f in found:
            rec = read_record(f.base, c, name=f.name)
            result = replay(rec, c, agent_config, on_stream=progress.stream)
            if f.kind == "af":
                klass = af_class(rec.comments) or "?"
                episodes = af_episodes(f.base, rec.native_fs, int(round(rec.duration_s * rec.native_fs)))
                per_af[f.name] = score_af(f.name, klass, episodes, result, rec.duration_s, c.tolerance_s)
            else:
                alarm, is_true = challenge2015_alarm(rec.comments)  # type: ignore[misc]
                (true_alarm if is_true else false_alarm)[f.name] = score_alarm_record(f.name, alarm, is_true, result)
            progress.record_done(f.name, rec.duration_s)
    finally:
        progress.finish()
    episodes = sum(r["episodes"] for r in per_af.values())
    detected = sum(r["detected"] for r in per_af.values())
    overlap = sum(r["detected_overlap"] for r in per_af.values())
    episodes_30, detected_30 = (sum(r[k] for r in per_af.values()) for k in ("episodes_30s", "detected_30s"))
    false = sum(r["false_alarms"] for r in per_af.values())
    non_af_h = sum(r["non_af_s"] for r in per_af.values()) / 3600.0
    by_class: dict[str, dict[str, Any]] = {}
    for r in per_af.values():
        k = by_class.setdefault(r["class"], {"records": 0, "episodes": 0, "detected": 0, "episodes_30s": 0,
                                             "detected_30s": 0, "false_alarms": 0, "non_af_hours": 0.0})
        k["records"] += 1
        for key in ("episodes", "detected", "episodes_30s", "detected_30s"):
            k[key] += r[key]
        k["false_alarms"] += r["false_alarms"]
        k["non_af_hours"] += r["non_af_s"] / 3600.0
    for k in by_class.values():
        k["sensitivity"] = _ratio(k["detected"], k["episodes"])
        k["sensitivity_30s"] = _ratio(k["detected_30s"], k["episodes_30s"])
        k["false_alarms_per_hour"] = _ratio(k["false_alarms"], k["non_af_hours"])
        k["non_af_hours"] = round(k["non_af_hours"], 4)
    delays = sorted(e["delay_s"] for r in per_af.values() for e in r["reference_episodes"] if e["detected"])
    report: dict[str, Any] = {
        "records": len(found),
        "af": {"records": len(per_af), "episodes": episodes, "detected": detected,
               "sensitivity": _ratio(detected, episodes), "detected_overlap": overlap,
               "sensitivity_overlap": _ratio(overlap, episodes), "episodes_30s": episodes_30,
               "detected_30s": detected_30, "sensitivity_30s": _ratio(detected_30, episodes_30),
               "delay_s": {"median": float(np.median(delays)), "max": delays[-1]} if delays else None,
               "false_alarms": false,
               "non_af_hours": round(non_af_h, 4), "false_alarms_per_hour": _ratio(false, non_af_h),
               "by_class": by_class, "per_record": per_af},
        "false_alarm_records": false_alarm,
        "config": {"fs_hz": c.fs_hz, "nan_fill_max_s": c.nan_fill_max_s, "tick_s": c.tick_s,
                   "latency_s": c.latency_s, "tolerance_s": c.tolerance_s,
                   "samples_per_frame": c.samples_per_frame, "pipeline": "rules only (no II+V1+V5 windows)"},
    }
    if true_alarm:
        report["true_alarm_records"] = true_alarm
    return report


def format_table(report: dict[str, Any]) -> list[str]:
    """The report as printed lines."""
    af = report["af"]
    lines = []
    if af["per_record"]:
        lines.append(f"{'record':<24} {'class':<14} {'dur s':>7} {'AF eps':>6} {'det':>4} {'ovl':>4} {'FA':>3}  "
                     "other alarms")
        for name, r in af["per_record"].items():
            others = ", ".join(f"{k}×{v}" for k, v in sorted(r["other_alarms"].items())) or "-"
            lines.append(f"{name:<24} {r['class']:<14} {r['duration_s']:7.1f} {r['episodes']:6d} {r['detected']:4d} "
                         f"{r['detected_overlap']:4d} {r['false_alarms']:3d}  {others}")

        def pct(x: float | None) -> str:
            return "n/a" if x is None else f"{100 * x:.1f} %"

        def rate(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.2f}/h"

        fah = af["false_alarms_per_hour"]
        lines.append(f"AF episodes {af['detected']}/{af['episodes']} detected (sensitivity {pct(af['sensitivity'])}; "
                     f"overlap criterion {af['detected_overlap']}/{af['episodes']}; episodes ≥ 30 s "
                     f"{af['detected_30s']}/{af['episodes_30s']}), "
                     f"{af['false_alarms']} false AF alarms in {af['non_af_hours']:.3f} h of non-AF signal "
                     f"({rate(fah)})")
        if af.get("delay_s"):
            lines.append(f"  delay of detected episodes (raise − reference start): median {af['delay_s']['median']:.1f} s, "
                         f"max {af['delay_s']['max']:.1f} s")
        for klass, k in af["by_class"].items():
            lines.append(f"  {klass:<14} records {k['records']:2d}  episodes {k['detected']}/{k['episodes']} "
                         f"({pct(k['sensitivity'])}; ≥ 30 s {k['detected_30s']}/{k['episodes_30s']})  "
                         f"false {k['false_alarms']} ({rate(k['false_alarms_per_hour'])})")
    for group, key in (("false_alarm_records", "must_not_raise"), ("true_alarm_records", "must_raise")):
        for name, r in report.get(group, {}).items():
            raised = ", ".join(f"{a['type']}@{a['onset_s']}s" for a in r["raised"]) or "none"
            lines.append(f"{name:<24} {r['alarm']} ({key.replace('_', ' ')} {r[key]}): "
                         f"{'OK' if r['ok'] else 'FAIL'}; alerts raised: {raised}")
    return lines

