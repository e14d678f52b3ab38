"""PTB-XL (PhysioNet ``ptb-xl``): 21 799 12-lead 10 s records with SCP-ECG statements.

Native layout::

    ptbxl_database.csv        one row per record: ecg_id, patient_id, age, sex, ...,
                              scp_codes ("{'NORM': 100.0, 'SR': 0.0}"), ..., strat_fold,
                              filename_lr, filename_hr
    scp_statements.csv        (optional) statement code → diagnostic class ...
    records100/00000/00001_lr.hea/.dat    100 Hz
    records500/00000/00001_hr.hea/.dat    500 Hz

The table is read with the ``csv`` module; signals with
:func:`firmware_sim.records.read_record`. ``strat_fold`` (1–10) is PTB-XL's own
patient-wise stratified split: folds 1–8 train, 9 validation, 10 test
(:data:`SPLITS`), as its authors recommend.
"""

from __future__ import annotations

import ast
import csv
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path

from firmware_sim.records import RecordError, read_record
from models.data.labels import labels_from_scp
from models.data.records import DatasetError, LabeledRecord, OnError, RecordDataset, parse_age

DATABASE_CSV = "ptbxl_database.csv"
STATEMENTS_CSV = "scp_statements.csv"
REQUIRED_COLUMNS = ("ecg_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr")
SPLITS: Mapping[str, tuple[int, ...]] = {"train": (1, 2, 3, 4, 5, 6, 7, 8), "val": (9,), "test": (10,)}
"""PTB-XL's recommended split by ``strat_fold``."""
RATES: Mapping[int, str] = {100: "filename_lr", 500: "filename_hr"}
AGE_OVER_89 = 300
"""PTB-XL writes 300 for every age above 89 (anonymisation); read as 90."""


def parse_scp_codes(text: str) -> dict[str, float]:
    """PTB-XL's ``scp_codes`` cell (a Python dict literal) → ``{code: likelihood}``.

    Raises :class:`ValueError` for a cell that is not such a dict.
    """
    try:
        value = ast.literal_eval(text.strip() or "{}")
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"scp_codes {text!r} is not a dict literal") from exc
    if not isinstance(value, dict):
        raise ValueError(f"scp_codes {text!r} is not a dict")
    return {str(k): float(v) for k, v in value.items()}


def _ptbxl_sex(value: str) -> str | None:
    """PTB-XL codes sex as 0 = male, 1 = female."""
    try:
        return {0: "M", 1: "F"}.get(int(float(value)))
    except ValueError:
        return None


class PtbXlDataset(RecordDataset):
    """PTB-XL records with labels from their SCP statements.

    Args:
        root: the PTB-XL folder (holding ``ptbxl_database.csv``).
        rate: 100 (``records100/``) or 500 (``records500/``).
        folds: only records whose ``strat_fold`` is one of these.
        split: ``"train"``, ``"val"`` or ``"test"`` (folds 1–8, 9, 10); not with ``folds``.
        min_likelihood: leave out statements whose likelihood is below this (0–100;
            rhythm and form statements have 0, so the default keeps all).
        on_error: ``"skip"`` (report and go on) or ``"raise"`` for an unreadable record.
    """

    name = "ptbxl"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        rate: int = 100,
        folds: Iterable[int] | None = None,
        split: str | None = None,
        min_likelihood: float = 0.0,
        on_error: OnError = "skip",
    ) -> None:
        super().__init__(root, on_error=on_error)
        table = self.root / DATABASE_CSV
        if not table.is_file():
            raise DatasetError(f"no {DATABASE_CSV} under {self.root} — is this a PTB-XL folder?")
        if rate not in RATES:
            raise ValueError(f"PTB-XL comes at 100 or 500 Hz, not rate={rate}")
        if split is not None and folds is not None:
            raise ValueError("give folds= or split=, not both")
        if split is not None:
            if split not in SPLITS:
                raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
            folds = SPLITS[split]
        self.rate = rate
        self.folds = frozenset(int(f) for f in folds) if folds is not None else None
        self.min_likelihood = min_likelihood
        self._rows = self._read_table(table)
        records_dir = self.root / f"records{rate}"
        if self._rows and not records_dir.is_dir():
            raise DatasetError(
                f"no records{rate}/ folder under {self.root}: download it, or use rate="
                f"{500 if rate == 100 else 100} if you have records{500 if rate == 100 else 100}/"
            )

    @staticmethod
    def _read_table(table: Path) -> dict[str, dict[str, str]]:
        try:
            with table.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                columns = [c.strip() for c in reader.fieldnames or []]
                missing = [c for c in REQUIRED_COLUMNS if c not in columns]
                if missing:
                    raise DatasetError(
                        f"{table} lacks the column(s) {', '.join(missing)} — is it PTB-XL's {DATABASE_CSV}?"
                    )
                rows = {}
                for row in reader:
                    row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
                    ecg_id = row["ecg_id"].split(".")[0]
                    rows[ecg_id] = row
                return rows
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DatasetError(f"cannot read {table}: {exc}") from exc

    @cached_property
    def statements(self) -> dict[str, dict[str, str]]:
        """``scp_statements.csv`` as ``{code: row}`` (empty when the file is absent)."""
        path = self.root / STATEMENTS_CSV
        if not path.is_file():
            return {}
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            key = (reader.fieldnames or [""])[0]  # the unnamed index column holds the code
            return {row[key].strip(): row for row in reader if row.get(key)}

    def fold_of(self, record_id: str) -> int | None:
        """``strat_fold`` of a record (None when blank)."""
        try:
            return int(float(self._rows[record_id]["strat_fold"]))
        except ValueError:
            return None

    def ids(self) -> list[str]:
        """``ecg_id`` strings of the selected folds, in ``ecg_id`` order."""
        ids = sorted(self._rows, key=lambda i: (len(i), i))
        if self.folds is None:
            return ids
        return [i for i in ids if self.fold_of(i) in self.folds]

    def _superclasses(self, codes: Iterable[str]) -> tuple[str, ...]:
        found = {
            self.statements[c].get("diagnostic_class", "").strip()
            for c in codes
            if c in self.statements
        }
        return tuple(sorted(found - {""}))

    def _load(self, record_id: str) -> LabeledRecord:
        row = self._rows[record_id]
        filename = row[RATES[self.rate]]
        if not filename:
            raise RecordError(f"ecg_id {record_id} has no {RATES[self.rate]}")
        scp = parse_scp_codes(row["scp_codes"])
        unmapped: Counter[str] = Counter()
        labels = labels_from_scp(scp, min_likelihood=self.min_likelihood, unmapped=unmapped)
        recording = read_record(self.root / filename)
        raw_age = parse_age(row.get("age", ""))
        age = 90.0 if raw_age is not None and raw_age >= AGE_OVER_89 else raw_age
        metadata: dict[str, object] = {
            "patient_id": row.get("patient_id", ""),
            "scp_codes": scp,
            "report": row.get("report", ""),
            "age_over_89": raw_age is not None and raw_age >= AGE_OVER_89,
        }
        for column in ("baseline_drift", "static_noise", "burst_noise", "electrodes_problems",
                       "extra_beats", "pacemaker", "heart_axis", "site", "device", "recording_date"):
            if row.get(column):
                metadata[column] = row[column]
        if self.statements:
            metadata["superclasses"] = self._superclasses(scp)
        return LabeledRecord(
            record_id,
            self.name,
            recording,
            labels,
            codes=tuple(scp),
            unmapped=tuple(unmapped),
            age=age,
            sex=_ptbxl_sex(row.get("sex", "")),
            fold=self.fold_of(record_id),
            metadata=metadata,
        )
