"""The ECG–text zero-shot model as shipped, in ONNX Runtime: numpy in, label scores out. No torch.

>>> model = ZeroShotModel.load()                                             # doctest: +SKIP
>>> r = model.classify(windows_mv, 125.0, STANDARD_LEADS, ["atrial fibrillation", "sinus rhythm"])
>>> r.scores[0]                               # softmax over the labels, one row per window  # doctest: +SKIP

The ECG encoder (``zeroshot_merl.onnx``) maps a 12-lead 10 s window to a unit vector in a space shared
with report text. A label's vector comes from its prompts: for the knowledge base's labels (by key,
name or synonym, :mod:`models.zeroshot.knowledge_base`) the shipped ``zeroshot_merl_text.npz`` holds it
for both prompt sets (``knowledge``: CKEPE-style criteria prompts; ``plain``: the name), so nothing more is
needed. Free-text labels are embedded by the MiniLM text encoder in ONNX (``zeroshot_text.onnx``, built by
``ecgstream models export zeroshot-text``; tokenised with ``tokenizers``) and the shipped projection.

``run`` (the cloud model worker's kind ``zeroshot``) scores every knowledge-base label with the knowledge
prompts and returns the project's stored ``zeroshot`` result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np

from models.preprocessing import MODEL_FS, WINDOW_SAMPLES, prepare_record
from models.runtime.onnx_model import ARTIFACTS, OnnxModel
from protocol.leads import STANDARD_LEADS

DEFAULT_ZEROSHOT = ARTIFACTS / "zeroshot_merl.onnx"
"""The shipped ECG encoder."""
DEFAULT_TEXT_ONNX = ARTIFACTS / "zeroshot_text.onnx"
"""Where ``ecgstream models export zeroshot-text`` writes the text encoder (not shipped: built on demand)."""
TEXT_EXPORT_COMMAND = "ecgstream models export zeroshot-text"
PromptSet = Literal["knowledge", "plain"]
MAX_TOKENS = 128


class TextEncoderMissing(RuntimeError):
    """Free-text labels need the text encoder ONNX, which is built on demand (the message names the command)."""


@dataclass(frozen=True)
class ZeroShotScores:
    """``scores`` (B, L): softmax over the labels per window; ``similarities`` (B, L): cosine similarity."""

    labels: tuple[str, ...]
    scores: np.ndarray
    similarities: np.ndarray
    prompt_set: str


class TextEncoder:
    """MiniLM (mean pooled, L2-normalised) in ONNX Runtime with the ``tokenizers`` tokenizer: texts → (n, 384)."""

    def __init__(self, onnx_path: Path, tokenizer_path: Path) -> None:
        from tokenizers import Tokenizer

        self.model = OnnxModel(onnx_path, providers=["cpu"])
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token, not a password

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.model.input_names:
            feed["token_type_ids"] = np.zeros_like(ids)
        return np.asarray(self.model.run(**feed)["sentence_embedding"], dtype=np.float32)


class ZeroShotModel:
    """Runtime adapter for kind ``zeroshot`` (see the module docstring)."""

    def __init__(self, model: OnnxModel, text_npz: Path, *, text_onnx: Path | None = None,
                 max_batch: int = 64) -> None:
        raw = model.metadata.get("ecgstream")
        if raw is None:
            raise ValueError(f"{model.path} has no 'ecgstream' metadata: not an ecgstream zero-shot model")
        self.model = model
        self.max_batch = max_batch
        self.info: dict[str, Any] = json.loads(raw)
        self.version: str = str(self.info.get("version", "unknown"))
        self.leads: tuple[str, ...] = tuple(self.info.get("leads", STANDARD_LEADS))
        if not text_npz.is_file():
            raise FileNotFoundError(f"{text_npz} not found: the zero-shot model ships its label embeddings there")
        with np.load(text_npz) as z:
            if str(z["version"]) != self.version:
                raise ValueError(f"{text_npz} belongs to {z['version']}, not {self.version}")
            self.keys: tuple[str, ...] = tuple(str(k) for k in z["keys"])
            self.names: tuple[str, ...] = tuple(str(n) for n in z["names"])
            self._label_emb = {"knowledge": z["knowledge"].astype(np.float32), "plain": z["plain"].astype(np.float32)}
            self._proj_w = z["projection_w"].astype(np.float32)
            self._proj_b = z["projection_b"].astype(np.float32)
            self.logit_scale = float(z["logit_scale"])
        self.text_onnx = text_onnx or DEFAULT_TEXT_ONNX
        self.tokenizer_path = text_npz.with_name("zeroshot_minilm_tokenizer.json")
        self._text: TextEncoder | None = None

    @classmethod
    def load(cls, path: Path | None = None, **kwargs: Any) -> Self:
        """Open the ECG encoder (default: the shipped one) and the ``<stem>_text.npz`` beside it;
        ``text_onnx``/``max_batch`` go to the model, ``providers``/``threads`` to :class:`OnnxModel`."""
        path = Path(DEFAULT_ZEROSHOT if path is None else path)
        text_onnx, max_batch = kwargs.pop("text_onnx", None), kwargs.pop("max_batch", 64)
        return cls(OnnxModel(path, **kwargs), path.with_name(f"{path.stem}_text.npz"), text_onnx=text_onnx,
                   max_batch=max_batch)

    @property
    def default_labels(self) -> tuple[str, ...]:
        """The knowledge base's label names (what :meth:`run` scores)."""
        return self.names

    # -- ECG side -----------------------------------------------------------------------------------

    def prepare(self, windows_mv: np.ndarray, fs_hz: float, leads: Sequence[str]) -> np.ndarray:
        """(B, n_leads, n) mV at ``fs_hz`` → (B, 12, 1250) band-passed mV at 125 Hz in standard lead order."""
        x = np.asarray(windows_mv, dtype=np.float64)
        if x.ndim != 3 or x.shape[1] != len(leads):
            raise ValueError(f"expected windows (B, {len(leads)} leads, n), got shape {x.shape}")
        missing = [lead for lead in self.leads if lead not in leads]
        if missing:
            raise ValueError(f"the zero-shot model reads the 12 standard leads; the windows lack {', '.join(missing)}")
        if not np.isfinite(x).all():
            raise ValueError("windows contain NaN or infinity")
        if x.shape[2] < 0.9 * WINDOW_SAMPLES * fs_hz / MODEL_FS:
            raise ValueError(f"a window needs about 10 s of signal, got {x.shape[2] / fs_hz:.2f} s")
        rows = [list(leads).index(lead) for lead in self.leads]
        out = np.zeros((x.shape[0], len(rows), WINDOW_SAMPLES), dtype=np.float32)
        for i, w in enumerate(x[:, rows, :]):
            p = prepare_record(w.T, fs_hz)
            if p.shape[1] >= WINDOW_SAMPLES:
                s = (p.shape[1] - WINDOW_SAMPLES) // 2
                out[i] = p[:, s : s + WINDOW_SAMPLES]
            else:
                out[i, :, : p.shape[1]] = p
        return out

    def embed_prepared(self, prepared: np.ndarray) -> np.ndarray:
        """(B, 12, 1250) prepared windows → (B, D) unit vectors."""
        from models.features import feature_matrix, measured_rows

        parts = [np.zeros((0, self._proj_w.shape[0]), np.float32)]
        rows = measured_rows(self.leads)
        for s in range(0, len(prepared), self.max_batch):
            part = np.ascontiguousarray(prepared[s : s + self.max_batch], dtype=np.float32)
            feats = feature_matrix(part, MODEL_FS, rows).astype(np.float32)
            parts.append(self.model.run(ecg=part, features=feats)["embedding"])
        return np.concatenate(parts)

    def embed(self, windows_mv: np.ndarray, fs_hz: float, leads: Sequence[str]) -> np.ndarray:
        return self.embed_prepared(self.prepare(windows_mv, fs_hz, leads))

    # -- text side ----------------------------------------------------------------------------------

    def label_embeddings(self, labels: Sequence[str], prompts: PromptSet = "knowledge") -> np.ndarray:
        """(L, D) unit vectors: shipped ones for knowledge-base labels, the text encoder for free text."""
        if prompts not in self._label_emb:
            raise ValueError(f"prompts must be 'knowledge' or 'plain', got {prompts!r}")
        if not labels:
            raise ValueError("give at least one label")
        shipped = self._label_emb[prompts]
        out = np.zeros((len(labels), shipped.shape[1]), dtype=np.float32)
        free: list[int] = []
        for i, text in enumerate(labels):
            j = self._known(text)
            if j is None:
                free.append(i)
            else:
                out[i] = shipped[j]
        if free:
            out[free] = self.embed_text([labels[i] for i in free])
        return out

    def _known(self, text: str) -> int | None:
        from models.zeroshot.knowledge_base import load_knowledge_base

        label = load_knowledge_base().find(text)
        if label is None or label.key not in self.keys:
            return None
        return self.keys.index(label.key)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Free text → (n, D) unit vectors (needs the text encoder ONNX; :class:`TextEncoderMissing` otherwise)."""
        if any(not t.strip() for t in texts):
            raise ValueError("a label must not be empty")
        if self._text is None:
            if not self.text_onnx.is_file():
                raise TextEncoderMissing(f"free-text labels need the text encoder {self.text_onnx}, which is built on "
                                         f"demand: run `{TEXT_EXPORT_COMMAND}` (needs the 'train' extra); the "
                                         f"knowledge base's labels work without it")
            self._text = TextEncoder(self.text_onnx, self.tokenizer_path)
        t = self._text.encode(texts) @ self._proj_w.T + self._proj_b
        return (t / np.linalg.norm(t, axis=1, keepdims=True)).astype(np.float32)

    # -- scoring ------------------------------------------------------------------------------------

    def score_embeddings(self, z: np.ndarray, labels: Sequence[str], prompts: PromptSet = "knowledge") -> ZeroShotScores:
        lab = self.label_embeddings(labels, prompts)
        sim = z @ lab.T
        logits = self.logit_scale * sim
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return ZeroShotScores(tuple(labels), e / e.sum(axis=1, keepdims=True), sim, prompts)

    def classify(self, windows_mv: np.ndarray, fs_hz: float, leads: Sequence[str], labels: Sequence[str],
                 prompts: PromptSet = "knowledge") -> ZeroShotScores:
        """Scores of ``labels`` for each window (see :class:`ZeroShotScores`)."""
        return self.score_embeddings(self.embed(windows_mv, fs_hz, leads), labels, prompts)

    def run(self, windows_mv: np.ndarray, fs_hz: float, leads: Sequence[str]) -> list[dict[str, Any]]:
        """One stored ``zeroshot`` result per window: every knowledge-base label, knowledge prompts."""
        r = self.classify(windows_mv, fs_hz, leads, self.names, "knowledge")
        return [result_dict(r, i) for i in range(r.scores.shape[0])]


def result_dict(r: ZeroShotScores, i: int, top: int = 3) -> dict[str, Any]:
    """Window ``i`` of ``r`` as the project's stored ``zeroshot`` result."""
    order = np.argsort(-r.scores[i])[:top]
    return {"prompt_set": r.prompt_set, "labels": list(r.labels),
            "scores": [round(float(v), 5) for v in r.scores[i]],
            "similarities": [round(float(v), 5) for v in r.similarities[i]],
            "top": [r.labels[j] for j in order]}
