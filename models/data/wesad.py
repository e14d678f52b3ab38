"""WESAD (Schmidt et al. 2018) in its own layout, for users who have a local copy.

The data set's folder holds one folder per subject, ``S2/S2.pkl`` … ``S17/S17.pkl``: a pickle written by
Python 2 (read with ``encoding="latin1"``) of a dict with ``signal`` → ``chest`` → ``ECG`` (the RespiBAN
chest ECG, mV, shape ``(n, 1)``, 700 Hz), ``label`` (``(n,)`` at 700 Hz: 1 baseline, 2 stress,
3 amusement; 0, 4–7 are transient/meditation/unused and ignored here) and ``subject``.

:func:`wesad_windows` cuts every labelled stretch of each subject into 10 s model windows (band-passed
0.5–40 Hz, 125 Hz, mV, :mod:`models.preprocessing`), each labelled with its stretch's class and subject.
No download happens here.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.preprocessing import WINDOW_SAMPLES, prepare_record, split_windows

WESAD_FS = 700.0
"""Sampling rate of the chest signals and the labels (Hz)."""
WESAD_CLASSES = {1: 0, 2: 1, 3: 2}
"""WESAD label → class index in ``models.stress.CLASSES`` (baseline, stress, amusement)."""


class WesadError(ValueError):
    """A folder or file is not in WESAD's layout (the message says which and why)."""


@dataclass(frozen=True)
class WesadSubject:
    """One subject's chest ECG (mV, 700 Hz) and per-sample labels."""

    subject: str
    ecg_mv: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class WesadWindows:
    """``windows``: (N, 1250) float32 band-passed mV at 125 Hz; ``labels``: class index; ``subjects``."""

    windows: np.ndarray
    labels: np.ndarray
    subjects: tuple[str, ...]


def subject_files(root: str | Path) -> list[Path]:
    """``S*/S*.pkl`` under ``root``, in subject-number order; WesadError when there are none."""
    root = Path(root)
    if not root.is_dir():
        raise WesadError(f"{root} is not a folder")
    files = [d / f"{d.name}.pkl" for d in root.glob("S*") if d.is_dir() and (d / f"{d.name}.pkl").is_file()]
    if not files:
        raise WesadError(f"{root} holds no WESAD subject (expected S<n>/S<n>.pkl)")
    return sorted(files, key=lambda p: (len(p.stem), p.stem))


def load_subject(path: str | Path) -> WesadSubject:
    """Read one ``S*.pkl``; WesadError naming the file when a field is missing or malformed."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = pickle.load(f, encoding="latin1")  # noqa: S301 - the user's own local copy of WESAD
    except (OSError, pickle.UnpicklingError, EOFError, UnicodeDecodeError) as exc:
        raise WesadError(f"{path}: cannot read the pickle: {exc}") from None
    try:
        ecg = np.asarray(data["signal"]["chest"]["ECG"], dtype=np.float64).reshape(-1)
        labels = np.asarray(data["label"]).reshape(-1).astype(np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise WesadError(f"{path}: not a WESAD subject file (needs signal/chest/ECG and label): {exc}") from None
    if ecg.shape != labels.shape:
        raise WesadError(f"{path}: {ecg.size} ECG samples but {labels.size} labels")
    subject = str(data.get("subject", path.stem)) if isinstance(data, dict) else path.stem
    return WesadSubject(subject, ecg, labels)


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, label) of every stretch of one constant label."""
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [labels.size]])
    return [(int(a), int(b), int(labels[a])) for a, b in zip(starts, ends, strict=True)]


def subject_windows(subject: WesadSubject, hop_s: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """One subject's labelled windows (N, 1250) and class indices; stretches shorter than a window give none."""
    windows, labels = [], []
    for a, b, label in _runs(subject.labels):
        if label not in WESAD_CLASSES or (b - a) / WESAD_FS < WINDOW_SAMPLES / 125.0:
            continue
        ecg = subject.ecg_mv[a:b]
        if not np.isfinite(ecg).all():
            ecg = np.nan_to_num(ecg)
        w = split_windows(prepare_record(ecg[:, None], WESAD_FS), hop_s)[:, 0, :]
        windows.append(w)
        labels.append(np.full(len(w), WESAD_CLASSES[label], dtype=np.int64))
    if not windows:
        return np.zeros((0, WINDOW_SAMPLES), np.float32), np.zeros(0, np.int64)
    return np.concatenate(windows), np.concatenate(labels)


def wesad_windows(root: str | Path, hop_s: float = 10.0) -> WesadWindows:
    """Every subject's labelled 10 s windows under ``root`` (WESAD layout)."""
    ws, ls, ss = [], [], []
    for path in subject_files(root):
        subject = load_subject(path)
        w, lab = subject_windows(subject, hop_s)
        ws.append(w)
        ls.append(lab)
        ss.extend([subject.subject] * len(w))
    windows = np.concatenate(ws) if ws else np.zeros((0, WINDOW_SAMPLES), np.float32)
    if len(windows) == 0:
        raise WesadError(f"{root}: no baseline, stress or amusement stretch of at least 10 s")
    return WesadWindows(windows.astype(np.float32), np.concatenate(ls), tuple(ss))
