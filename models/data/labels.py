"""The ecgstream label vocabulary: the classifier's classes and how each source's codes map to them.

Every source of labels — SNOMED CT codes in PhysioNet/CinC Challenge 2020/2021 headers,
PTB-XL SCP-ECG statements, MIT-BIH rhythm annotations and beat symbols, and the
simulator's rhythm names — is mapped onto one fixed, ordered set of classes
(:data:`CLASSES`). Labels are **multi-label**: a record may be ``{"NSR", "PVC"}``.

Conventions (decided here, applied to every source):

* ``NSR`` means *the underlying rhythm is sinus at a normal rate*. It co-occurs with
  ectopic-beat classes (PAC, PVC), conduction (IAVB, LBBB, RBBB), repolarisation
  (STE, STD, TINV, LQT) and PAUSE, as in PTB-XL and the Georgia/PTB-XL parts of the
  Challenge. Sinus bradycardia and tachycardia are ``SB`` / ``STACH``, not ``NSR``.
  A source that labels ectopy without stating the rhythm (Chapman-Shaoxing's ``PAC``
  alone, MIT-BIH ``(B``/``(T``) gets no ``NSR``: the loaders never invent a label.
* Challenge equivalence classes are honoured: PAC 284470004 ≡ SVPB 63593006,
  PVC 427172004 ≡ VPB 17338001, RBBB 59118001 ≡ CRBBB 713427006,
  LBBB 164909002 ≡ CLBBB 733534002.
* Broader codes are folded into a class where they clearly belong: paroxysmal,
  chronic and rapid AF → ``AF``; atrial tachycardia, AVNRT, AVRT, PSVT and
  junctional tachycardia → ``SVT``; atrial/supraventricular bigeminy, blocked PACs
  and junctional premature complexes → ``PAC``; ventricular bigeminy/trigeminy,
  couplets and "ventricular ectopics" → ``PVC``; prolonged PR (164947007, PTB-XL
  ``LPR``) → ``IAVB`` (a PR over 200 ms *is* first-degree AV block); sinus arrest and
  sinoatrial block → ``PAUSE``.
* **Not classes** (mapped to no label, so a window showing only them has an all-zero
  target): ventricular fibrillation/flutter, asystole, second- and third-degree AV
  block (Wenckebach included), paced rhythm, pre-excitation, fusion beats, and
  "bradycardia"/"premature complex" codes that do not say where the rhythm or beat
  comes from. VF in particular is *not* folded into VT: the edge must catch VF and
  asystole with its rules (no organised QRS), not with this classifier.
* ``NOISE`` (noise/unreadable) has no SNOMED or SCP code. It comes from MIT-BIH-style
  noise annotations (``~`` with every signal marked noisy or unreadable) and is
  otherwise for synthetic windows a caller marks as unreadable.

Unknown or unmapped codes never raise: they are skipped, and counted in the
``unmapped`` :class:`collections.Counter` a caller may pass in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelClass:
    """One class of the vocabulary and the source codes that mean it.

    Attributes:
        key: short name used everywhere (``"AF"``).
        description: what it means, in words.
        snomed: SNOMED CT codes (as strings) that map to this class.
        scp: PTB-XL SCP-ECG statement codes that map to it.
        mitbih_rhythms: MIT-BIH rhythm annotation strings (aux notes) that map to it.
        beat_symbols: WFDB beat annotation symbols that map to it.
    """

    key: str
    description: str
    snomed: frozenset[str] = frozenset()
    scp: frozenset[str] = frozenset()
    mitbih_rhythms: frozenset[str] = frozenset()
    beat_symbols: frozenset[str] = frozenset()


def _c(key: str, description: str, *, snomed: Iterable[str] = (), scp: Iterable[str] = (),
       rhythms: Iterable[str] = (), beats: Iterable[str] = ()) -> LabelClass:
    return LabelClass(key, description, frozenset(snomed), frozenset(scp), frozenset(rhythms), frozenset(beats))


VOCABULARY: tuple[LabelClass, ...] = (
    _c("NSR", "sinus rhythm (normal rate)", snomed=["426783006"], scp=["SR", "NORM"], rhythms=["(N"]),
    _c("SB", "sinus bradycardia", snomed=["426177001"], scp=["SBRAD"], rhythms=["(SBR"]),
    _c("STACH", "sinus tachycardia", snomed=["427084000"], scp=["STACH"]),
    _c("AF", "atrial fibrillation",
       snomed=["164889003", "282825002", "426749004", "314208002", "195080001"], scp=["AFIB"],
       rhythms=["(AFIB", "(AF"]),
    _c("AFL", "atrial flutter", snomed=["164890007", "195080001"], scp=["AFLT"], rhythms=["(AFL"]),
    _c("SVT", "supraventricular tachycardia (AVNRT, AVRT, atrial or junctional tachycardia)",
       snomed=["426761007", "67198005", "251166008", "233897008", "713422000", "426648003"],
       scp=["SVTAC", "PSVT"], rhythms=["(SVTA", "(SVT"]),
    _c("VT", "ventricular tachycardia", snomed=["164895002", "425856008"], rhythms=["(VT"]),
    _c("PAC", "premature atrial / supraventricular contractions",
       snomed=["284470004", "63593006", "251173003", "251168009", "251170000", "251164006"],
       scp=["PAC", "SVARR"], rhythms=["(AB", "(SVB"], beats=["A", "a", "J", "S"]),
    _c("PVC", "premature ventricular contractions",
       snomed=["427172004", "17338001", "11157007", "251180001", "251182009", "164884008"],
       scp=["PVC"], rhythms=["(B", "(T"], beats=["V", "r"]),
    _c("IAVB", "first-degree AV block (PR > 200 ms)", snomed=["270492004", "164947007"], scp=["1AVB", "LPR"]),
    _c("LBBB", "left bundle branch block", snomed=["164909002", "733534002"], scp=["CLBBB"], beats=["L"]),
    _c("RBBB", "right bundle branch block", snomed=["59118001", "713427006"], scp=["CRBBB"], beats=["R"]),
    _c("STE", "ST elevation", snomed=["164931005"], scp=["STE_"]),
    _c("STD", "ST depression", snomed=["429622005", "704997005"], scp=["STD_"]),
    _c("TINV", "T-wave inversion", snomed=["59931005"], scp=["INVT"]),
    _c("LQT", "long QT", snomed=["111975006"], scp=["LNGQT"]),
    _c("PAUSE", "pause (sinus arrest, sinoatrial block)", snomed=["5609005", "65778007"], rhythms=["(SAB"]),
    _c("NOISE", "noise / unreadable signal"),
)
"""Every class, in the fixed order of :data:`CLASSES`."""

CLASSES: tuple[str, ...] = tuple(c.key for c in VOCABULARY)
"""Class keys in the fixed order used by :func:`multi_hot` and every model output."""

CLASS_INDEX: Mapping[str, int] = {key: i for i, key in enumerate(CLASSES)}
"""Position of each class key in :data:`CLASSES`."""

DESCRIPTIONS: Mapping[str, str] = {c.key: c.description for c in VOCABULARY}
"""Class key → description."""


def _inverse(attr: str) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for cls in VOCABULARY:
        for code in getattr(cls, attr):
            out.setdefault(code, set()).add(cls.key)
    return {code: frozenset(keys) for code, keys in out.items()}


SNOMED_TO_LABELS: Mapping[str, frozenset[str]] = _inverse("snomed")
"""SNOMED CT code → class keys (one code may map to two, e.g. 195080001 AF and flutter)."""
SCP_TO_LABELS: Mapping[str, frozenset[str]] = _inverse("scp")
"""PTB-XL SCP statement → class keys."""
MITBIH_RHYTHM_TO_LABELS: Mapping[str, frozenset[str]] = _inverse("mitbih_rhythms")
"""MIT-BIH rhythm aux note (``"(AFIB"``) → class keys."""
BEAT_TO_LABELS: Mapping[str, frozenset[str]] = _inverse("beat_symbols")
"""WFDB beat symbol → class keys (``V``, ``r`` (R-on-T) → PVC; ``A a J S`` → PAC; ``L`` → LBBB; ``R`` → RBBB).
Fusion (``F``), escape, paced and unclassifiable beats map to nothing."""

KNOWN_MITBIH_RHYTHMS: frozenset[str] = frozenset(
    {*MITBIH_RHYTHM_TO_LABELS, "(BII", "(IVR", "(NOD", "(P", "(PREX", "(VFL", "(VF", "(ASYS"}
)
"""Every MIT-BIH-style rhythm string the vocabulary knows, including those that map to no class."""

SIM_RHYTHM_LABELS: Mapping[str, frozenset[str]] = {
    "sinus": frozenset({"NSR"}),
    "sinus_brady": frozenset({"SB"}),
    "sinus_tachy": frozenset({"STACH"}),
    "afib": frozenset({"AF"}),
    "aflutter": frozenset({"AFL"}),
    "pac": frozenset({"NSR", "PAC"}),
    "pvc": frozenset({"NSR", "PVC"}),
    "pvc_bigeminy": frozenset({"NSR", "PVC"}),
    "pvc_trigeminy": frozenset({"NSR", "PVC"}),
    "vt": frozenset({"VT"}),
    "vf": frozenset(),
    "svt": frozenset({"SVT"}),
    "av_block_1": frozenset({"NSR", "IAVB"}),
    "wenckebach": frozenset(),
    "lbbb": frozenset({"NSR", "LBBB"}),
    "rbbb": frozenset({"NSR", "RBBB"}),
    "stemi_anterior": frozenset({"NSR", "STE"}),
    "stemi_inferior": frozenset({"NSR", "STE"}),
    "stemi_lateral": frozenset({"NSR", "STE"}),
    "st_depression": frozenset({"NSR", "STD"}),
    "t_inversion": frozenset({"NSR", "TINV"}),
    "long_qt": frozenset({"NSR", "LQT"}),
    "pause": frozenset({"NSR", "PAUSE"}),
    "asystole": frozenset(),
}
"""Simulator rhythm (``ecgstream sim rhythms``) → class keys.

Rhythms built on sinus beats carry ``NSR`` besides their finding (bigeminy and
trigeminy too: the simulator's non-ectopic beats are sinus). STEMI windows are
``STE`` only: their reciprocal depression is part of the STEMI pattern, not primary
``STD``. ``vf``, ``wenckebach`` (second-degree block) and ``asystole`` are no class
(all-zero target), see the module notes."""


def _normalise(code: object) -> str:
    return str(code).strip()


def _lookup(
    codes: Iterable[object] | str,
    table: Mapping[str, frozenset[str]],
    unmapped: Counter[str] | None,
    key: Callable[[object], str] = _normalise,
) -> frozenset[str]:
    if isinstance(codes, str):
        codes = codes.split(",")
    found: set[str] = set()
    for raw in codes:
        code = key(raw)
        if not code:
            continue
        labels = table.get(code)
        if labels is None:
            if unmapped is not None:
                unmapped[code] += 1
        else:
            found |= labels
    return frozenset(found)


def labels_from_snomed(codes: Iterable[object] | str, *, unmapped: Counter[str] | None = None) -> frozenset[str]:
    """Class keys for SNOMED CT codes (an iterable, or a comma-separated ``# Dx:`` string).

    Codes may be strings or integers. Codes outside the vocabulary are skipped and,
    when ``unmapped`` is given, counted in it. Never raises on odd input.

    >>> sorted(labels_from_snomed("426783006,17338001"))
    ['NSR', 'PVC']
    """
    return _lookup(codes, SNOMED_TO_LABELS, unmapped)


def labels_from_scp(
    codes: Iterable[object] | Mapping[str, float] | str,
    *,
    min_likelihood: float = 0.0,
    unmapped: Counter[str] | None = None,
) -> frozenset[str]:
    """Class keys for PTB-XL SCP-ECG statements.

    ``codes`` is an iterable of statement codes, a comma-separated string, or PTB-XL's
    ``scp_codes`` dict (code → likelihood 0–100); with a dict, statements below
    ``min_likelihood`` are left out (PTB-XL gives rhythm and form statements likelihood 0,
    so the default 0 keeps everything). Unmapped codes are counted in ``unmapped``.

    >>> sorted(labels_from_scp({"NORM": 100.0, "LVOLT": 0.0, "SR": 0.0}))
    ['NSR']
    """
    if isinstance(codes, Mapping):
        kept = []
        for code, likelihood in codes.items():
            try:
                keep = float(likelihood) >= min_likelihood
            except (TypeError, ValueError):
                keep = True
            if keep:
                kept.append(code)
        codes = kept
    return _lookup(codes, SCP_TO_LABELS, unmapped, key=lambda c: _normalise(c).upper())


def clean_aux(note: object) -> str:
    """An annotation aux note without NUL padding and whitespace (MIT-BIH stores ``"(N\\x00"``)."""
    return str(note).replace("\x00", "").strip()


def labels_from_mitbih_rhythm(note: object, *, unmapped: Counter[str] | None = None) -> frozenset[str]:
    """Class keys for one MIT-BIH rhythm aux note (``"(AFIB"``, ``"(N\\x00"``, ``"(SVTA"``).

    Rhythms that the vocabulary knows but maps to no class (``"(VFL"``, ``"(BII"``, ...)
    give an empty set and are not counted as unmapped; unknown strings are counted.
    """
    code = clean_aux(note)
    labels = MITBIH_RHYTHM_TO_LABELS.get(code)
    if labels is not None:
        return labels
    if unmapped is not None and code and code not in KNOWN_MITBIH_RHYTHMS:
        unmapped[code] += 1
    return frozenset()


def labels_from_beats(symbols: Iterable[object]) -> frozenset[str]:
    """Class keys implied by WFDB beat symbols (``V`` → PVC, ``A``/``a``/``J``/``S`` → PAC ...).

    Symbols that imply no class (``N``, ``F``, ``~``, ``+`` ...) are ignored.
    """
    found: set[str] = set()
    for symbol in symbols:
        found |= BEAT_TO_LABELS.get(str(symbol), frozenset())
    return frozenset(found)


def labels_from_rhythm(name: str) -> frozenset[str]:
    """Class keys for a simulator rhythm name (see :data:`SIM_RHYTHM_LABELS`).

    Raises :class:`ValueError` naming the known rhythms for a name the simulator does not have.
    """
    try:
        return SIM_RHYTHM_LABELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown simulator rhythm {name!r}; known: {', '.join(sorted(SIM_RHYTHM_LABELS))}") from None


def multi_hot(labels: Iterable[str]) -> np.ndarray:
    """``(len(CLASSES),)`` float32 vector with 1 at each label's position in :data:`CLASSES`.

    Raises :class:`ValueError` for a key that is not a class (a typo must not train silently).
    """
    out = np.zeros(len(CLASSES), dtype=np.float32)
    for label in labels:
        try:
            out[CLASS_INDEX[label]] = 1.0
        except KeyError:
            raise ValueError(f"{label!r} is not a class; classes are {', '.join(CLASSES)}") from None
    return out


def labels_from_multi_hot(vector: np.ndarray, threshold: float = 0.5) -> frozenset[str]:
    """The class keys whose entry in a ``(len(CLASSES),)`` vector is at least ``threshold``."""
    vector = np.asarray(vector).reshape(-1)
    if vector.shape[0] != len(CLASSES):
        raise ValueError(f"expected a vector of {len(CLASSES)} entries, got {vector.shape[0]}")
    return frozenset(key for key, value in zip(CLASSES, vector, strict=True) if value >= threshold)
