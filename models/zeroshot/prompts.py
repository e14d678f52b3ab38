"""Prompts for zero-shot classification and the report text the ECG encoder is trained against.

Two prompt sets (``PromptStyle``):

- ``plain``: the label's name alone ("atrial fibrillation");
- ``knowledge``: CKEPE-style, one prompt per diagnostic criterion of the label in the knowledge base
  ("atrial fibrillation: irregularly irregular RR intervals", …) plus its synonyms; the embeddings of a
  label's prompts are averaged into one label embedding (prompt ensembling).

A label that is not in the knowledge base (free text) is its own single prompt in both sets.

``rewriter``: an optional hook (:class:`PromptRewriter`, e.g. a language model that paraphrases or expands
the prompts), off by default; what it returns replaces the label's prompts.

Training reports (:func:`report_text`) are written from a window's labels in varied clinical phrasing:
names, synonyms, subtypes and criteria, in several sentence templates, so that the encoder learns the
vocabulary both prompt sets use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np

from models.zeroshot.knowledge_base import KnowledgeBase, KnowledgeLabel, load_knowledge_base

PromptStyle = Literal["knowledge", "plain"]
PROMPT_STYLES: tuple[PromptStyle, ...] = ("knowledge", "plain")


class PromptRewriter(Protocol):
    """Rewrites one label's prompts (e.g. a language model); must return at least one prompt."""

    def __call__(self, label: KnowledgeLabel, prompts: Sequence[str]) -> Sequence[str]: ...


def label_prompts(label: KnowledgeLabel, style: PromptStyle) -> list[str]:
    """The prompts of one knowledge-base label in ``style``."""
    if style == "plain":
        return [label.name]
    if style != "knowledge":
        raise ValueError(f"prompt style must be one of {', '.join(PROMPT_STYLES)}, got {style!r}")
    out = [f"{label.name}: {c}" for c in label.criteria]
    out += [f"{s}, {label.criteria[0]}" for s in label.synonyms[:2]]
    return out


def prompts_for(texts: Sequence[str], style: PromptStyle, *, kb: KnowledgeBase | None = None,
                rewriter: PromptRewriter | None = None) -> list[list[str]]:
    """One list of prompts per label text: the knowledge base's prompts for a label it knows (by key, name
    or synonym), else the text itself; ``rewriter`` (off by default) then rewrites each list."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt style must be one of {', '.join(PROMPT_STYLES)}, got {style!r}")
    kb = kb or load_knowledge_base()
    out: list[list[str]] = []
    for text in texts:
        if not text.strip():
            raise ValueError("a label must not be empty")
        label = kb.find(text)
        prompts = label_prompts(label, style) if label is not None else [text.strip()]
        if rewriter is not None and label is not None:
            prompts = [p for p in rewriter(label, prompts) if p.strip()]
            if not prompts:
                raise ValueError(f"the prompt rewriter returned nothing for {label.key}")
        out.append(prompts)
    return out


_OPENERS = ("", "ECG shows ", "Findings: ", "12-lead ECG: ", "The tracing demonstrates ", "Interpretation: ",
            "Rhythm strip with ", "Consistent with ")
_NORMAL = ("no acute changes", "otherwise normal ECG", "")


def _phrase(label: KnowledgeLabel, rng: np.random.Generator, criteria_only: float) -> str:
    if rng.random() < criteria_only:               # described by its criteria alone, as a reader would measure it
        return ", ".join(label.criteria[i] for i in rng.permutation(len(label.criteria))[:2])
    pick = rng.integers(6)
    name = label.name
    if pick == 1 and label.synonyms:
        name = str(rng.choice(label.synonyms))
    elif pick == 2 and label.subtypes:
        name = str(rng.choice(label.subtypes))
    crit = list(label.criteria)
    n_crit = int(rng.integers(0, 3))
    chosen = [crit[i] for i in rng.permutation(len(crit))[:n_crit]]
    if not chosen:
        return name
    return f"{name} with {' and '.join(chosen)}" if rng.random() < 0.5 else f"{name}: {', '.join(chosen)}"


def report_text(keys: Sequence[str], rng: np.random.Generator, *, kb: KnowledgeBase | None = None,
                criteria_only: float = 0.0) -> str:
    """A short report for a window carrying the knowledge-base labels ``keys`` (none: a non-diagnostic
    tracing), phrased at random (see the module docstring); ``criteria_only``: the share of findings described
    by two of their criteria without naming them."""
    kb = kb or load_knowledge_base()
    labels = [kb[k] for k in keys]
    if not labels:
        return str(rng.choice(["no diagnostic rhythm statement", "non-specific ECG, no class",
                               "unclassified rhythm", "abnormal ECG, finding not coded"]))
    order = rng.permutation(len(labels))
    body = "; ".join(_phrase(labels[i], rng, criteria_only) for i in order)
    opener = str(rng.choice(_OPENERS))
    text = f"{opener}{body}" if opener else body[0].upper() + body[1:]
    if len(labels) == 1 and labels[0].key in ("NSR",):
        tail = str(rng.choice(_NORMAL))
        text = f"{text}, {tail}" if tail else text
    return text + "."
