"""St Petersburg INCART 12-lead Arrhythmia Database (PhysioNet ``incartdb``).

Native layout: ``I01.hea`` … ``I75.hea`` with ``.dat`` and reference ``.atr``
annotations, 12 standard leads at 257 Hz, 30 min each; same WFDB format and
annotation conventions as MIT-BIH, so this is :class:`MitBihDataset` with INCART's
header comments: ``# <age>: 65 <sex>: F <diagnoses> Coronary artery disease, ...``.
"""

from __future__ import annotations

import re

from models.data.mitbih import MitBihDataset
from models.data.records import mitbih_age_sex, parse_age, parse_sex

_AGE = re.compile(r"<age>:\s*(\S+)", re.IGNORECASE)
_SEX = re.compile(r"<sex>:\s*(\S+)", re.IGNORECASE)
_DIAGNOSES = re.compile(r"<diagnoses>:?\s*(.*)$", re.IGNORECASE)


class IncartDataset(MitBihDataset):
    """INCART records: beats and rhythms as for MIT-BIH; age, sex, diagnoses from ``<tag>:`` comments."""

    name = "incart"
    layout_hint = "the INCART folder (I01.hea, I01.dat, I01.atr ...)"

    def _patient(self, comments: list[str]) -> tuple[float | None, str | None, dict[str, object]]:
        age: float | None = None
        sex: str | None = None
        extra: dict[str, object] = {}
        for line in comments:
            if (m := _AGE.search(line)) and age is None:
                age = parse_age(m.group(1))
            if (m := _SEX.search(line)) and sex is None:
                sex = parse_sex(m.group(1))
            if m := _DIAGNOSES.search(line):
                extra["diagnoses"] = m.group(1).strip()
        if age is None and sex is None:
            age, sex = mitbih_age_sex(comments)
        return age, sex, extra
