"""Lead and electrode names shared by every tier.

Leads are always named as on a printed 12-lead ECG (``I`` … ``V6``) and always
ordered as in :data:`STANDARD_LEADS`; a *lead set* on the wire is a 12-bit mask
over that order. Electrodes carry the lead-off flags, because a wire falls off
an electrode, not a lead.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from protocol.errors import ProtocolError

STANDARD_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)
"""The 12 standard leads, in the order used everywhere in ecgstream."""

WEARABLE_LEADS: tuple[str, ...] = ("II", "V1", "V5")
"""The leads the ecgstream wearable measures."""

INDEPENDENT_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
"""Eight leads from which the other four follow exactly (Einthoven, Goldberger)."""

ELECTRODES: tuple[str, ...] = (
    "RA", "LA", "LL", "RL", "V1", "V2", "V3", "V4", "V5", "V6",
)
"""Electrode names; bit *i* of a lead-off mask refers to ``ELECTRODES[i]``."""

_LEAD_INDEX = {name: i for i, name in enumerate(STANDARD_LEADS)}
_ALIASES = {
    "MLII": "II", "MLI": "I", "MLIII": "III", "ML2": "II",
    "AVR": "aVR", "AVL": "aVL", "AVF": "aVF",
}


def canonical_lead_name(name: str) -> str:
    """Map a lead label as found in records (``ii``, ``MLII``, ``avr``, ``V5 ``) to ours.

    Raises :class:`ProtocolError` for a label that is not one of the 12 standard leads.
    """
    key = name.strip()
    if key in _LEAD_INDEX:
        return key
    upper = key.upper().replace(" ", "")
    if upper in _ALIASES:
        return _ALIASES[upper]
    for std in STANDARD_LEADS:
        if std.upper() == upper:
            return std
    raise ProtocolError(f"{name!r} is not one of the 12 standard leads {', '.join(STANDARD_LEADS)}")


def lead_index(name: str) -> int:
    """Position of a lead in :data:`STANDARD_LEADS`."""
    return _LEAD_INDEX[canonical_lead_name(name)]


def lead_mask(leads: Iterable[str]) -> int:
    """12-bit mask of a lead set; bit *i* is ``STANDARD_LEADS[i]``."""
    mask = 0
    for name in leads:
        mask |= 1 << lead_index(name)
    return mask


@lru_cache(maxsize=4096)
def leads_from_mask(mask: int) -> tuple[str, ...]:
    """Lead names of a mask, in standard order. Raises ProtocolError for bits above 11."""
    if mask < 0 or mask >> len(STANDARD_LEADS):
        raise ProtocolError(f"lead mask 0x{mask:x} has bits outside the 12 standard leads")
    return tuple(name for i, name in enumerate(STANDARD_LEADS) if mask >> i & 1)


def electrode_mask(electrodes: Iterable[str]) -> int:
    """Bit mask of electrodes (for lead-off flags)."""
    mask = 0
    for name in electrodes:
        try:
            mask |= 1 << ELECTRODES.index(name)
        except ValueError:
            raise ProtocolError(f"{name!r} is not an electrode name {ELECTRODES}") from None
    return mask


@lru_cache(maxsize=1024)
def electrodes_from_mask(mask: int) -> tuple[str, ...]:
    """Electrode names of a lead-off mask."""
    if mask < 0 or mask >> len(ELECTRODES):
        raise ProtocolError(f"electrode mask 0x{mask:x} has bits outside {len(ELECTRODES)} electrodes")
    return tuple(name for i, name in enumerate(ELECTRODES) if mask >> i & 1)
