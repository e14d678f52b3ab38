"""Where a strip's signal comes from: a record file, the simulator, or a window in the cloud store.

Every function returns a :class:`~ecgstream.plotting.strip.Strip` cut to ``[start_s, start_s +
seconds)`` and raises :class:`PlotSourceError` (a :class:`ValueError`) with one clear line when
the source cannot give one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from datetime import UTC, datetime

from ecgstream.plotting.strip import Strip
from firmware_sim.records import (
    Recording,
    read_annotations,
    read_record,
    rhythm_aux,
    select_leads,
)
from protocol.window_payload import EcgWindow


class PlotSourceError(ValueError):
    """The strip asked for cannot be made (no such alert, window, lead or time span)."""


def _span(n_samples: int, fs: float, start_s: float, seconds: float | None, what: str) -> tuple[int, int]:
    """Sample range ``[first, stop)`` of ``start_s`` … ``start_s + seconds`` within ``n_samples``."""
    if start_s < 0:
        raise PlotSourceError(f"--start must be >= 0, got {start_s:g}")
    first = round(start_s * fs)
    if first >= n_samples:
        raise PlotSourceError(f"{what} is {n_samples / fs:.1f} s long; --start {start_s:g} is past its end")
    stop = n_samples if seconds is None else min(n_samples, first + max(1, round(seconds * fs)))
    return first, stop


def _pick(names: Sequence[str], units: Sequence[str], leads: Sequence[str] | None) -> list[int]:
    """Columns to draw: ``leads`` in that order, else every channel in mV."""
    if leads:
        return [names.index(lead) for lead in leads]
    picked = [i for i, unit in enumerate(units) if unit == "mV"]
    if not picked:
        raise PlotSourceError(f"no channel in mV to draw (channels: {', '.join(names)}); name them with --leads")
    return picked


def _rhythms_in(changes: Sequence[tuple[float, str]], t0: float, t1: float) -> tuple[tuple[float, str], ...]:
    """Rhythm changes within ``[t0, t1)`` relative to ``t0``, led by the rhythm in effect at ``t0``."""
    before = [label for t, label in changes if t <= t0]
    inside = [(t - t0, label) for t, label in changes if t0 < t < t1]
    leading = ((0.0, before[-1]),) if before else ()
    return leading + tuple(inside)


def strip_from_record(
    path: str | os.PathLike[str],
    *,
    start_s: float = 0.0,
    seconds: float | None = 10.0,
    leads: Sequence[str] | None = None,
    fs: float | None = None,
) -> Strip:
    """A strip of the record at ``path`` (WFDB, EDF or CSV; ``fs`` for a CSV that states no rate).

    WFDB beat and rhythm annotations beside the record (``.atr``, else ``.qrs`` …) are drawn.
    Raises :class:`~firmware_sim.records.RecordError` or :class:`PlotSourceError`.
    """
    recording: Recording = read_record(path, fs=fs)
    if leads:
        recording = select_leads(recording, leads, derive=True)
    columns = _pick(recording.lead_names, recording.units, leads)
    first, stop = _span(recording.n_samples, recording.fs, start_s, seconds, f"record {recording.name!r}")
    beats: tuple[tuple[float, str], ...] = ()
    rhythms: tuple[tuple[float, str], ...] = ()
    source = recording.source_path
    if source is not None and source.suffix.lower() not in {".csv", ".edf", ".bdf"}:
        annotations = read_annotations(source)
        if annotations is not None:
            t0, t1 = first / recording.fs, stop / recording.fs
            beats = tuple((s / recording.fs - t0, sym) for s, sym in annotations.beats() if first <= s < stop)
            changes = [(s / recording.fs, aux) for s, aux in annotations.rhythm_changes()]
            rhythms = _rhythms_in(changes, t0, t1)
    return Strip(
        signals=recording.signals[first:stop, columns],
        fs=recording.fs,
        lead_names=tuple(recording.lead_names[i] for i in columns),
        title=f"{recording.name}  ({recording.fs:g} Hz)",
        start_s=first / recording.fs,
        beats=beats,
        rhythms=rhythms,
    )


def strip_from_synthesis(
    rhythm: str,
    *,
    seed: int = 0,
    seconds: float = 10.0,
    start_s: float = 0.0,
    fs: float = 500.0,
    leads: Sequence[str] | None = None,
    heart_rate: float | None = None,
) -> Strip:
    """A synthesised strip of ``rhythm`` (the simulator's 12 leads, or ``leads``), with its true beats."""
    from firmware_sim.synthesis import synthesize

    if start_s < 0:
        raise PlotSourceError(f"--start must be >= 0, got {start_s:g}")
    result = synthesize(rhythm, seconds=start_s + seconds, fs=fs, seed=seed, heart_rate=heart_rate)
    names = tuple(result.lead_names)
    try:
        columns = [names.index(lead) for lead in leads] if leads else list(range(len(names)))
    except ValueError:
        raise PlotSourceError(f"the simulator has leads {', '.join(names)}, not {', '.join(leads or ())}") from None
    first = round(start_s * fs)
    stop = result.signals.shape[0]
    beats = tuple((s / fs - start_s, lab) for s, lab in zip(result.beats, result.beat_labels, strict=True)
                  if first <= s < stop)
    changes = [(e.onset_s, rhythm_aux(e.label)) for e in result.events if e.kind == "rhythm"]
    return Strip(
        signals=result.signals[first:stop, columns],
        fs=fs,
        lead_names=tuple(names[i] for i in columns),
        title=f"synthetic {rhythm} (seed {seed}, {fs:g} Hz) - not a real patient",
        start_s=start_s,
        beats=beats,
        rhythms=_rhythms_in(changes, start_s, stop / fs),
    )


def strip_from_window(
    window: EcgWindow,
    *,
    title: str = "",
    start_s: float = 0.0,
    seconds: float | None = None,
    leads: Sequence[str] | None = None,
) -> Strip:
    """A strip of a window the edge sent (:class:`~protocol.window_payload.EcgWindow`).

    Its reconstructed leads are marked as reconstructed.
    """
    names = tuple(window.leads)
    try:
        columns = [names.index(lead) for lead in leads] if leads else list(range(len(names)))
    except ValueError:
        raise PlotSourceError(f"window {window.window_id} has leads {', '.join(names)}") from None
    first, stop = _span(window.n_samples, window.fs_hz, start_s, seconds, f"window {window.window_id}")
    signals = window.millivolts().T[first:stop, columns]
    started = datetime.fromtimestamp(window.t0_us / 1e6, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    heading = title or f"window {window.window_id}"
    return Strip(
        signals=signals,
        fs=float(window.fs_hz),
        lead_names=tuple(names[i] for i in columns),
        title=f"{heading}  (patient {window.patient_id}, device {window.device_id}, {started})",
        start_s=first / window.fs_hz,
        reconstructed=frozenset(window.reconstructed) & frozenset(names[i] for i in columns),
    )


async def _load(url: str, alert_id: str | None, window_id: str | None) -> tuple[EcgWindow, str]:
    from cloud.store import Store

    async with Store(url) as store:
        try:
            title = ""
            if alert_id is not None:
                stored = await store.get_alert(alert_id)
                alert = stored.alert
                if not alert.window_id:
                    raise PlotSourceError(f"alert {alert_id} ({alert.alert_type}) has no window stored with it")
                window_id = alert.window_id
                onset = datetime.fromtimestamp(alert.onset_gateway_us / 1e6, tz=UTC).strftime("%H:%M:%S")
                title = f"{alert.alert_type} alert ({alert.priority}) at {onset} UTC"
            assert window_id is not None
            return await store.load_window(window_id), title
        except LookupError as exc:  # the store's NotFound
            raise PlotSourceError(str(exc).strip().splitlines()[0]) from None


def strip_from_store(
    url: str,
    *,
    alert_id: str | None = None,
    window_id: str | None = None,
    start_s: float = 0.0,
    seconds: float | None = None,
    leads: Sequence[str] | None = None,
) -> Strip:
    """The window of alert ``alert_id`` (or window ``window_id``) in the cloud database at ``url``."""
    if (alert_id is None) == (window_id is None):
        raise PlotSourceError("name one of an alert or a window")
    try:
        window, title = asyncio.run(_load(url, alert_id, window_id))
    except PlotSourceError:
        raise
    except ValueError as exc:  # malformed ids, undecodable payloads
        raise PlotSourceError(str(exc).strip().splitlines()[0]) from None
    return strip_from_window(window, title=title, start_s=start_s, seconds=seconds, leads=leads)

