"""Pick leads from a recording by name, in the order asked for."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from firmware_sim.records.errors import MissingLeadError
from firmware_sim.records.recording import Recording, channel_name
from protocol.leads import WEARABLE_LEADS

# Each limb lead as a combination of (I, II): III = II - I, aVR = -(I + II)/2,
# aVL = I - II/2, aVF = II - I/2 (Einthoven, Goldberger). Any two of them fix the rest.
_LIMB_BASIS = {
    "I": (1.0, 0.0),
    "II": (0.0, 1.0),
    "III": (-1.0, 1.0),
    "aVR": (-0.5, -0.5),
    "aVL": (1.0, -0.5),
    "aVF": (-0.5, 1.0),
}


def _derive_limb_lead(recording: Recording, lead: str) -> np.ndarray | None:
    """``lead`` (in mV) from the first two limb leads in mV the recording has, or None if it lacks two."""
    if lead not in _LIMB_BASIS:
        return None
    present = [
        i
        for i, (name, unit) in enumerate(zip(recording.lead_names, recording.units, strict=True))
        if name in _LIMB_BASIS and unit == "mV"
    ]
    if len(present) < 2:
        return None
    pair = present[:2]  # no two limb-lead axes are parallel, so any pair spans the frontal plane
    basis = np.array([_LIMB_BASIS[recording.lead_names[i]] for i in pair]).T
    weights = np.linalg.solve(basis, np.array(_LIMB_BASIS[lead]))
    return recording.signals[:, pair] @ weights


def select_leads(
    recording: Recording, leads: Sequence[str] = WEARABLE_LEADS, *, derive: bool = False
) -> Recording:
    """The recording reduced to ``leads``, in that order.

    Names are matched after mapping to standard spelling (``"ii"`` finds ``II``);
    a channel that is not a standard lead (``"PLETH"``) is matched by its label.
    With ``derive=True`` a missing limb lead (I, II, III, aVR, aVL, aVF) is computed
    exactly from any two limb leads present, by Einthoven's and Goldberger's
    relations (e.g. II = I + III); precordial leads are never derived.

    Raises :class:`MissingLeadError` naming the missing leads and the channels
    the record has, e.g. ``record 'mitdb/100' has no lead V1 (it has II, V5)``.
    """
    if not leads:
        raise ValueError("select_leads needs at least one lead name")
    wanted = [channel_name(lead) for lead in leads]
    columns: list[np.ndarray] = []
    missing: list[str] = []
    for lead in wanted:
        if lead in recording.lead_names:
            columns.append(recording.signals[:, recording.lead_names.index(lead)])
            continue
        derived = _derive_limb_lead(recording, lead) if derive else None
        if derived is None:
            missing.append(lead)
        else:
            columns.append(derived)
    if missing:
        raise MissingLeadError(recording.name, missing, recording.lead_names)
    units = tuple(
        recording.units[recording.lead_names.index(lead)] if lead in recording.lead_names else "mV"
        for lead in wanted
    )
    return dataclasses.replace(
        recording, signals=np.column_stack(columns), lead_names=tuple(wanted), units=units
    )
