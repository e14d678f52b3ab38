"""The clinical knowledge base the zero-shot prompts are built from (``knowledge/labels.toml``, shipped as data).

>>> kb = load_knowledge_base()
>>> kb["AF"].snomed, kb["AF"].criteria[0]
('164889003', 'irregularly irregular RR intervals')

Each :class:`KnowledgeLabel` has a key, a report name, its SNOMED CT code (plus codes scored as equivalent),
the PTB-XL SCP-ECG statement where one exists, diagnostic criteria in words, synonyms and subtypes.
:func:`validate` checks what every consumer relies on; :func:`labels_for_codes` maps a record's SNOMED
codes onto the knowledge base's keys (evaluation and training on real records).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

KNOWLEDGE_FILE = "labels.toml"


class KnowledgeBaseError(ValueError):
    """The knowledge base file is malformed (the message names the label and the problem)."""


@dataclass(frozen=True)
class KnowledgeLabel:
    key: str
    name: str
    snomed: str
    criteria: tuple[str, ...]
    synonyms: tuple[str, ...] = ()
    subtypes: tuple[str, ...] = ()
    snomed_also: tuple[str, ...] = ()
    scp: str | None = None
    classifier: bool = False
    """Whether the edge classifier has this class (:data:`models.data.labels.CLASSES`)."""

    @property
    def codes(self) -> frozenset[str]:
        """Every SNOMED CT code that means this label."""
        return frozenset((self.snomed, *self.snomed_also))


@dataclass(frozen=True)
class KnowledgeBase:
    labels: tuple[KnowledgeLabel, ...]
    source: str

    def __getitem__(self, key: str) -> KnowledgeLabel:
        for label in self.labels:
            if label.key == key:
                return label
        raise KeyError(key)

    def __iter__(self) -> Iterator[KnowledgeLabel]:
        return iter(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(label.key for label in self.labels)

    def find(self, text: str) -> KnowledgeLabel | None:
        """The label whose key, name or synonym is ``text`` (case-insensitive), else None."""
        t = text.strip().lower()
        for label in self.labels:
            if t in (label.key.lower(), label.name.lower(), *(s.lower() for s in label.synonyms)):
                return label
        return None

    def labels_for_codes(self, codes: Iterable[str]) -> frozenset[str]:
        """Keys of the labels any of ``codes`` (SNOMED CT, as strings) means."""
        have = {str(c).strip() for c in codes}
        return frozenset(label.key for label in self.labels if label.codes & have)


def _label(raw: Mapping[str, Any], source: str) -> KnowledgeLabel:
    key = raw.get("key")
    allowed = {"key", "name", "snomed", "snomed_also", "scp", "classifier", "criteria", "synonyms", "subtypes"}
    unknown = set(raw) - allowed
    if unknown:
        raise KnowledgeBaseError(f"{source}: label {key!r} has unknown keys {sorted(unknown)}")
    try:
        return KnowledgeLabel(
            key=str(raw["key"]), name=str(raw["name"]), snomed=str(raw.get("snomed", "")),
            criteria=tuple(str(c) for c in raw.get("criteria", ())),
            synonyms=tuple(str(s) for s in raw.get("synonyms", ())),
            subtypes=tuple(str(s) for s in raw.get("subtypes", ())),
            snomed_also=tuple(str(s) for s in raw.get("snomed_also", ())),
            scp=str(raw["scp"]) if raw.get("scp") else None, classifier=bool(raw.get("classifier", False)))
    except KeyError as exc:
        raise KnowledgeBaseError(f"{source}: label {key!r} lacks {exc.args[0]!r}") from None


def validate(kb: KnowledgeBase) -> None:
    """Raise :class:`KnowledgeBaseError` unless every label has a unique key and name, a numeric SNOMED
    CT code, at least two criteria and no empty text."""
    seen: set[str] = set()
    for label in kb:
        where = f"{kb.source}: label {label.key!r}"
        if not label.key or label.key in seen:
            raise KnowledgeBaseError(f"{where}: key empty or used twice")
        seen.add(label.key)
        if not label.snomed.isdigit() or not all(c.isdigit() for c in label.snomed_also):
            raise KnowledgeBaseError(f"{where}: SNOMED CT codes must be digits, got {sorted(label.codes)}")
        if len(label.criteria) < 2:
            raise KnowledgeBaseError(f"{where}: needs at least two diagnostic criteria")
        if any(not t.strip() for t in (label.name, *label.criteria, *label.synonyms, *label.subtypes)):
            raise KnowledgeBaseError(f"{where}: empty text")
    names = [label.name.lower() for label in kb]
    if len(set(names)) != len(names):
        raise KnowledgeBaseError(f"{kb.source}: label names must be unique")


def read_knowledge_base(path: str | Path) -> KnowledgeBase:
    """A knowledge base file (``[[label]]`` tables), validated."""
    path = Path(path)
    return _parse(path.read_text(encoding="utf-8"), str(path))


def _parse(text: str, source: str) -> KnowledgeBase:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KnowledgeBaseError(f"{source}: not TOML ({exc})") from None
    kb = KnowledgeBase(tuple(_label(raw, source) for raw in doc.get("label", ())), source)
    if not kb.labels:
        raise KnowledgeBaseError(f"{source}: no [[label]] tables")
    validate(kb)
    return kb


@lru_cache(maxsize=1)
def load_knowledge_base() -> KnowledgeBase:
    """The shipped knowledge base (``models/zeroshot/knowledge/labels.toml``)."""
    ref = resources.files("models.zeroshot") / "knowledge" / KNOWLEDGE_FILE
    return _parse(ref.read_text(encoding="utf-8"), f"models/zeroshot/knowledge/{KNOWLEDGE_FILE}")
