"""Write synthesised ECG to disk: a WFDB record plus its ground truth as JSON.

The record has the 12 standard leads named ``I`` … ``V6`` in mV at 1 µV
resolution (format 16); the JSON beside it (same stem, ``.json``) lists every
ground-truth event (rhythm episodes, noise, device events) with onset and
offset in seconds, and the beat annotations, so alarms can be scored later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

ADC_GAIN_PER_MV = 1000.0
"""Counts per mV in written records: 1 µV resolution, ±32.7 mV range."""


def write_wfdb_with_truth(
    out: str | Path,
    signals: np.ndarray,
    fs: float,
    lead_names: Sequence[str],
    truth: Mapping[str, Any],
    *,
    comments: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Write ``out.hea``/``out.dat`` and ``out.json``; returns (header path, truth path).

    ``out`` is the record path without extension; its folder is created.
    """
    out = Path(out)
    if out.suffix in (".hea", ".dat", ".json"):
        out = out.with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim != 2 or signals.shape[1] != len(lead_names):
        raise ValueError(f"signals must have shape (n, {len(lead_names)}), got {signals.shape}")
    limit = 32767 / ADC_GAIN_PER_MV
    clipped = int(np.count_nonzero(np.abs(signals) > limit))
    digital = np.rint(np.clip(signals, -limit, limit) * ADC_GAIN_PER_MV).astype(np.int16)
    wfdb.wrsamp(
        record_name=out.name,
        fs=float(fs),
        units=["mV"] * len(lead_names),
        sig_name=list(lead_names),
        d_signal=digital.astype(np.int64),
        fmt=["16"] * len(lead_names),
        adc_gain=[ADC_GAIN_PER_MV] * len(lead_names),
        baseline=[0] * len(lead_names),
        comments=list(comments) + ([f"clipped samples: {clipped}"] if clipped else []),
        write_dir=str(out.parent),
    )
    truth_path = out.with_suffix(".json")
    truth_path.write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out.with_suffix(".hea"), truth_path
