"""Alarm evaluation: real records replayed through the whole edge path, alarms scored against references.

Each WFDB record is turned into what a wearable would send and fed to an
:class:`~edge.agent.EdgeAgent` (``mode="sync"``, rules as configured) in stream time, as
:mod:`ecgstream.edge_sim` does for simulated wards:

1. **read** with :func:`wfdb.rdrecord` (``.dat`` and ``.mat``-based WFDB alike);
2. **leads**: the channels named as standard leads (:data:`protocol.leads.STANDARD_LEADS`) are
   kept — CPSC 2021: I, II; PhysioNet 2015: II. Other channels (the 2015 records' unnamed
   precordial ``V``, ``PLETH``, ``RESP``) are ignored and listed in the report: a "V" of unknown
   position must not pose as V1. The alarm rules analyse lead II; the reconstruction VAE needs II,
   V1 and V5, so these streams give no model windows (the session counts ``windows_unsupported``),
   which is expected and reported, not an error;
3. **invalid samples** (WFDB NaN): runs of at most ``nan_fill_max_s`` are filled by linear
   interpolation (counted); longer runs are not bridged: every frame touching one is withheld, so
   the edge sees lost sequence numbers, a gap, exactly as for lost BLE frames (counted);
4. **baseline**: each lead's median is subtracted (CPSC 2021 has DC offsets of 3–10 mV);
5. **rate**: resampled polyphase to ``fs_hz`` (250 Hz, the ``ecgstream-250`` wearable's rate;
   ``None`` keeps the record's rate — the stream state accepts any rate);
6. **frames**: ecgstream BLE frames v1 (int16, 1 µV per count, as many samples per frame as fit
   244 bytes), consecutive sequence numbers and device timestamps of the first sample; frame *k*
   arrives at gateway time ``T0 + end of its last sample + latency_s``, and the agent ticks every
   ``tick_s`` of arrival time (:meth:`EdgeAgent.feed_many`), then flushes at the end of the record.

Alert times come from the alert's ``details['onset_s']`` (stream seconds: record seconds, since the
stream starts at the record's first sample).

**Scoring, CPSC 2021 (AF)**. Reference AF episodes run from an ``(AFIB`` (or ``(AFL``) rhythm
annotation to the next rhythm annotation, or to the end of the record. An AF alarm is a message
with ``alert_type == "af"`` and event ``raised``; its onset is the engine's episode onset (the
start of the persistence period, so the 30-s persistence delay does not push it out of a short
episode). A reference episode is *detected* when an AF alarm's onset lies in
``[start − tolerance_s, end + tolerance_s]``; an AF alarm whose onset lies in no such interval is a
*false alarm*. Episode sensitivity = detected / episodes; false alarms per hour of non-AF signal
(record time outside every reference episode). Also reported: ``detected_overlap`` (an AF alarm
episode — from its onset to its clearing, or the record end — overlaps the reference episode: the
EC57-style criterion, which credits an alarm that stays up across a short sinus interruption, and
also one whose onset came before the annotated start), the sensitivity over episodes of ≥ 30 s alone
(``episodes_30s`` / ``detected_30s``: the guideline definition of an AF episode, and the shortest a
30-s persistence can confirm inside it) and each detection's delay (raise time − episode start). The record class (non AF / paroxysmal / persistent) is the header comment.

**Scoring, PhysioNet/CinC 2015**. The header names the alarm (``Asystole``,
``Ventricular_Tachycardia``, …) and whether it was true or false. For a false alarm the edge must
not raise that alarm type (raised or escalated to) anywhere in the record; for a true alarm it must.
Every alert raised is listed per record.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import wfdb
from scipy.signal import resample_poly

from edge.agent import AgentConfig, EdgeAgent, MemorySink
from protocol.ble_frame import EcgFrame, SampleFormat, encode_frame, max_samples_per_frame, quantize
from protocol.frame_batch import FrameBatch, encode_frames
from protocol.leads import STANDARD_LEADS
from protocol.messages import Alert

GATEWAY_T0_S = 1_700_000_000.0
"""Gateway time (Unix s) of stream time 0 in replays."""
DEVICE_T0_US = 1_000_000
"""Device clock (µs) of the first sample."""
LSB_NV = 1000
SAMPLE_FORMAT = SampleFormat.INT16

AF_RHYTHMS = ("(AFIB", "(AFL")
"""Rhythm annotations that open an AF episode (CPSC 2021 scores atrial flutter as AF too)."""
AF_ALERT = "af"

CHALLENGE2015_ALARMS = {
    "asystole": "asystole",
    "extreme_bradycardia": "extreme_bradycardia",
    "extreme_tachycardia": "extreme_tachycardia",
    "ventricular_tachycardia": "vt",
    "ventricular_flutter_fib": "vf",
}
"""PhysioNet/CinC 2015 alarm names (lower case) → the edge's ``alert_type``."""
ACTIVE_EVENTS = ("raised", "escalated")
CLINICAL_EPISODE_S = 30.0
"""Shortest AF episode guidelines count (ESC 2020: an episode lasts ≥ 30 s); also reported on its own."""


@dataclass(frozen=True)
class ReplayConfig:
    """How a record is turned into a stream (see the module docstring)."""

    fs_hz: int | None = 250
    """Stream rate (Hz); None keeps the record's own rate."""
    nan_fill_max_s: float = 0.05
    """Longest run of invalid (NaN) samples filled by interpolation; longer runs become gaps."""
    samples_per_frame: int | None = None
    """Samples per lead per frame; None: as many as fit one 244-byte frame."""
    tick_s: float = 0.5
    latency_s: float = 0.02
    """Gateway arrival after the frame's last sample (BLE connection interval and stack)."""
    tolerance_s: float = 0.0
    """An AF alarm onset this far outside a reference episode still counts for it."""

    def __post_init__(self) -> None:
        if self.fs_hz is not None and self.fs_hz <= 0:
            raise ValueError("fs_hz must be positive (or None)")
        if self.nan_fill_max_s < 0 or self.tick_s <= 0 or self.latency_s < 0 or self.tolerance_s < 0:
            raise ValueError("nan_fill_max_s, latency_s, tolerance_s must be >= 0 and tick_s > 0")


@dataclass
class Recording:
    """The standard-lead channels of one record, in mV, ready to stream."""

    name: str
    fs: float
    """Rate of ``signal`` (Hz), after resampling."""
    native_fs: float
    leads: tuple[str, ...]
    signal: np.ndarray
    """(n, leads) mV, baseline removed, short NaN runs filled; long NaN runs still NaN."""
    duration_s: float
    comments: tuple[str, ...]
    ignored_channels: tuple[str, ...]
    nan_filled: int = 0
    """Invalid samples (all leads) filled by interpolation, at the record's rate."""
    nan_unfilled: int = 0
    """Invalid samples in runs too long to fill (sent as gaps), at the record's rate."""


@dataclass
class ReplayResult:
    """What the agent did with one record."""

    name: str
    alerts: list[Alert]
    stream: dict[str, Any]


def _standard_name(name: str) -> str | None:
    for lead in STANDARD_LEADS:
        if name.strip().lower() == lead.lower():
            return lead
    return None


def _fill_short_nans(x: np.ndarray, max_len: int) -> tuple[np.ndarray, int, int]:
    """Linear interpolation over NaN runs of at most ``max_len`` samples (per column)."""
    x = x.copy()
    filled = unfilled = 0
    idx = np.arange(x.shape[0])
    for c in range(x.shape[1]):
        col = x[:, c]
        bad = np.isnan(col)
        if not bad.any():
            continue
        good = ~bad
        edges = np.diff(np.r_[0, bad.astype(np.int8), 0])
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        if not good.any():
            unfilled += int(bad.sum())
            continue
        interp = np.interp(idx, idx[good], col[good])
        for a, b in zip(starts, stops, strict=True):
            inner = a > 0 and b < len(col)
            if b - a <= max_len and inner:
                col[a:b] = interp[a:b]
                filled += int(b - a)
            else:
                unfilled += int(b - a)
    return x, filled, unfilled


def read_record(base: str | os.PathLike[str], config: ReplayConfig | None = None, *,
                name: str | None = None) -> Recording:
    """Read one WFDB record (path without extension) and prepare its standard leads for streaming."""
    c = config or ReplayConfig()
    rec = wfdb.rdrecord(str(base), physical=True)
    keep, leads, ignored = [], [], []
    for i, ch in enumerate(rec.sig_name):
        lead = _standard_name(ch)
        if lead is None or lead in leads:
            ignored.append(ch)
        else:
            keep.append(i)
            leads.append(lead)
    if not keep:
        raise ValueError(f"{base}: no standard ECG lead among channels {rec.sig_name}")
    order = sorted(range(len(leads)), key=lambda k: STANDARD_LEADS.index(leads[k]))
    keep, leads = [keep[k] for k in order], [leads[k] for k in order]
    fs = float(rec.fs)
    x = np.asarray(rec.p_signal[:, keep], dtype=np.float64)
    x, filled, unfilled = _fill_short_nans(x, int(math.floor(c.nan_fill_max_s * fs + 1e-9)))
    x = x - np.nanmedian(x, axis=0)
    invalid: np.ndarray = np.asarray(np.isnan(x).any(axis=1), dtype=bool)
    out_fs = fs
    if c.fs_hz is not None and c.fs_hz != fs:
        ratio = Fraction(int(c.fs_hz), 1) / Fraction(fs).limit_denominator(1000)
        up, down = ratio.numerator, ratio.denominator
        y = resample_poly(np.nan_to_num(x), up, down, axis=0)
        if invalid.any():
            j = np.arange(y.shape[0])
            lo = np.minimum((j * down) // up, len(invalid) - 1)
            hi = np.minimum(-((-j * down) // up), len(invalid) - 1)
            y[invalid[lo] | invalid[hi]] = np.nan
        x, out_fs = y, float(c.fs_hz)
    return Recording(name or Path(base).name, out_fs, fs, tuple(leads), x, rec.sig_len / fs,
                     tuple(rec.comments or ()), tuple(ignored), filled, unfilled)


def frames(rec: Recording, config: ReplayConfig | None = None) -> tuple[list[tuple[bytes, float]], int]:
    """The record as encoded frames with their stream end times (s); and the frames withheld (gaps)."""
    c = config or ReplayConfig()
    n_leads = len(rec.leads)
    per = c.samples_per_frame or max_samples_per_frame(n_leads, SAMPLE_FORMAT)
    per = min(per, max_samples_per_frame(n_leads, SAMPLE_FORMAT))
    n = rec.signal.shape[0]
    fs_hz = int(round(rec.fs))
    full = n // per
    counts = quantize(rec.signal, LSB_NV, SAMPLE_FORMAT)
    invalid = np.isnan(rec.signal).any(axis=1)
    seq = np.arange(full + (1 if n % per else 0), dtype=np.int64)
    t0 = DEVICE_T0_US + np.rint(seq * per * 1e6 / rec.fs).astype(np.int64)
    encoded: list[bytes] = []
    if full:
        batch = FrameBatch(seq=seq[:full].astype(np.uint32), t0_us=t0[:full].astype(np.uint64),
                           lead_off=np.zeros(full, dtype=np.uint16), battery_pct=np.full(full, -1),
                           samples=counts[: full * per].reshape(full, per, n_leads), fs_hz=fs_hz, leads=rec.leads,
                           lsb_nv=LSB_NV, sample_format=SAMPLE_FORMAT)
        encoded = encode_frames(batch)
    if n % per:
        encoded.append(encode_frame(EcgFrame(int(seq[-1]), int(t0[-1]), fs_hz, rec.leads, counts[full * per :],
                                             lsb_nv=LSB_NV, sample_format=SAMPLE_FORMAT)))
    out, withheld = [], 0
    for k, data in enumerate(encoded):
        a, b = k * per, min(n, (k + 1) * per)
        if invalid[a:b].any():
            withheld += 1
            continue
        out.append((data, b / rec.fs))
    return out, withheld


def replay(rec: Recording, config: ReplayConfig | None = None, agent_config: AgentConfig | None = None) -> ReplayResult:
    """Stream one prepared record through a fresh :class:`EdgeAgent` (sync mode, rules as configured)."""
    c = config or ReplayConfig()
    sink = MemorySink(keep_windows=False)
    agent = EdgeAgent(agent_config, sink, mode="sync", clock=lambda: GATEWAY_T0_S)
    device = _device_id(rec.name)
    fed, withheld = frames(rec, c)
    agent.feed_many(((device, data, "frame", GATEWAY_T0_S + end + c.latency_s) for data, end in fed),
                    tick_s=c.tick_s, transport="replay")
    if fed:
        agent.tick(GATEWAY_T0_S + fed[-1][1] + c.latency_s)
    agent.flush()
    s = agent.sessions.get(device)
    stream: dict[str, Any] = {
        "fs_hz": rec.fs, "native_fs_hz": rec.native_fs, "leads": list(rec.leads),
        "ignored_channels": list(rec.ignored_channels), "frames_sent": len(fed), "frames_withheld": withheld,
        "nan_samples_filled": rec.nan_filled, "nan_samples_as_gaps": rec.nan_unfilled,
        "rejected_payloads": dict(agent.counters.rejected),
    }
    if s is not None:
        stream.update({
            "gaps": dict(s.counters.gaps), "samples_lost": s.stream.counters.samples_lost,
            "samples_interpolated": s.stream.counters.samples_interpolated,
            "analysis_skipped_samples": s.counters.analysis_skipped_samples,
            "detector_resets": s.counters.detector_resets, "windows": s.counters.windows,
            "windows_unsupported": s.counters.windows_unsupported, "internal_errors": s.counters.internal_errors,
            "paced_beats": s.counters.paced_beats,
        })
    return ReplayResult(rec.name, list(sink.alerts), stream)


def _device_id(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in name)
    return cleaned[-64:] or "record"


# -- references ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AfEpisode:
    start_s: float
    end_s: float


def af_class(comments: Sequence[str]) -> str | None:
    """CPSC 2021 record class from the header comments, or None when the record is not of that kind."""
    for line in comments:
        text = line.strip().lower()
        if text.endswith("atrial fibrillation"):
            if text.startswith("non"):
                return "non AF"
            if text.startswith("paroxysmal"):
                return "paroxysmal AF"
            if text.startswith("persistent"):
                return "persistent AF"
    return None


def challenge2015_alarm(comments: Sequence[str]) -> tuple[str, bool] | None:
    """(alarm name, true alarm?) from a PhysioNet/CinC 2015 header, or None."""
    lowered = [line.strip().lower() for line in comments]
    alarm = next((line for line in lowered if line in CHALLENGE2015_ALARMS), None)
    verdict = next((line for line in lowered if line in ("true alarm", "false alarm")), None)
    if alarm is None or verdict is None:
        return None
    return alarm, verdict == "true alarm"


def af_episodes(base: str | os.PathLike[str], fs: float, sig_len: int) -> list[AfEpisode]:
    """Reference AF episodes from the ``.atr`` rhythm annotations (aux notes starting with ``(``)."""
    ann = wfdb.rdann(str(base), "atr")
    changes = [(int(s), str(aux).strip()) for s, aux in zip(ann.sample, ann.aux_note or [], strict=False)
               if aux and str(aux).strip().startswith("(")]
    changes.sort(key=lambda item: item[0])
    episodes: list[AfEpisode] = []
    open_at: int | None = None
    for sample, rhythm in changes:
        is_af = rhythm in AF_RHYTHMS
        if is_af and open_at is None:
            open_at = sample
        elif not is_af and open_at is not None:
            if sample > open_at:
                episodes.append(AfEpisode(open_at / fs, sample / fs))
            open_at = None
    if open_at is not None and sig_len > open_at:
        episodes.append(AfEpisode(open_at / fs, sig_len / fs))
    return episodes


# -- discovery -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    base: Path
    name: str
    kind: str
    """``af`` (CPSC 2021 layout) or ``alarm`` (PhysioNet/CinC 2015)."""


def find_records(root: str | os.PathLike[str]) -> Iterator[Found]:
    """CPSC 2021-style records (AF class comment + ``.atr``) and PhysioNet 2015 alarm records under ``root``."""
    root = Path(root)
    for hea in sorted(root.rglob("*.hea")):
        base = hea.with_suffix("")
        try:
            header = wfdb.rdheader(str(base))
        except Exception:  # noqa: BLE001 - not a record this evaluation reads
            continue
        comments = header.comments or []
        name = str(base.relative_to(root)) if base.parent != root else base.name
        if af_class(comments) is not None and hea.with_suffix(".atr").is_file():
            yield Found(base, name, "af")
        elif challenge2015_alarm(comments) is not None:
            yield Found(base, name, "alarm")


# -- scoring ---------------------------------------------------------------------------------------


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
             agent_config: AgentConfig | None = None) -> dict[str, Any]:
    """Replay and score every record under ``root``; returns the JSON report (see the module docstring).

    Raises ``ValueError`` when no CPSC 2021 or PhysioNet 2015 record is found.
    """
    c = config or ReplayConfig()
    found = list(find_records(root))
    if not found:
        raise ValueError(f"no CPSC 2021 (AF class + .atr) or PhysioNet/CinC 2015 alarm records under {root}")
    per_af: dict[str, Any] = {}
    false_alarm: dict[str, Any] = {}
    true_alarm: dict[str, Any] = {}
    for f in found:
        rec = read_record(f.base, c, name=f.name)
        result = replay(rec, c, agent_config)
        if f.kind == "af":
            header = wfdb.rdheader(str(f.base))
            klass = af_class(header.comments or []) or "?"
            episodes = af_episodes(f.base, float(header.fs), int(header.sig_len))
            per_af[f.name] = score_af(f.name, klass, episodes, result, rec.duration_s, c.tolerance_s)
        else:
            alarm, is_true = challenge2015_alarm(rec.comments)  # type: ignore[misc]
            (true_alarm if is_true else false_alarm)[f.name] = score_alarm_record(f.name, alarm, is_true, result)
    episodes = sum(r["episodes"] for r in per_af.values())
    detected = sum(r["detected"] for r in per_af.values())
    overlap = sum(r["detected_overlap"] for r in per_af.values())
    episodes_30, detected_30 = (sum(r[k] for r in per_af.values()) for k in ("episodes_30s", "detected_30s"))
    false = sum(r["false_alarms"] for r in per_af.values())
    non_af_h = sum(r["non_af_s"] for r in per_af.values()) / 3600.0
    by_class: dict[str, dict[str, Any]] = {}
    for r in per_af.values():
        k = by_class.setdefault(r["class"], {"records": 0, "episodes": 0, "detected": 0, "false_alarms": 0,
                                             "non_af_hours": 0.0})
        k["records"] += 1
        k["episodes"] += r["episodes"]
        k["detected"] += r["detected"]
        k["false_alarms"] += r["false_alarms"]
        k["non_af_hours"] += r["non_af_s"] / 3600.0
    for k in by_class.values():
        k["sensitivity"] = _ratio(k["detected"], k["episodes"])
        k["false_alarms_per_hour"] = _ratio(k["false_alarms"], k["non_af_hours"])
        k["non_af_hours"] = round(k["non_af_hours"], 4)
    report: dict[str, Any] = {
        "records": len(found),
        "af": {"records": len(per_af), "episodes": episodes, "detected": detected,
               "sensitivity": _ratio(detected, episodes), "detected_overlap": overlap,
               "sensitivity_overlap": _ratio(overlap, episodes), "episodes_30s": episodes_30,
               "detected_30s": detected_30, "sensitivity_30s": _ratio(detected_30, episodes_30),
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
        for klass, k in af["by_class"].items():
                lines.append(f"  {klass:<14} records {k['records']:2d}  episodes {k['detected']}/{k['episodes']} "
                         f"({pct(k['sensitivity'])})  false {k['false_alarms']} "
                         f"({rate(k['false_alarms_per_hour'])})")
    for group, key in (("false_alarm_records", "must_not_raise"), ("true_alarm_records", "must_raise")):
        for name, r in report.get(group, {}).items():
            raised = ", ".join(f"{a['type']}@{a['onset_s']}s" for a in r["raised"]) or "none"
            lines.append(f"{name:<24} {r['alarm']} ({key.replace('_', ' ')} {r[key]}): "
                         f"{'OK' if r['ok'] else 'FAIL'}; alerts raised: {raised}")
    return lines

