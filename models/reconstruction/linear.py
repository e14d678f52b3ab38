"""Linear baseline: one patient-generic least-squares map from (II, V1, V5) to I, V2, V3, V4, V6.

``predicted = W @ [II, V1, V5] + b`` per sample (W 5×3, b 5), fitted on synthetic training
windows; III, aVR, aVL, aVF are derived from I and II exactly. numpy only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.reconstruction import INPUT_INDEX, INPUT_LEADS, PREDICTED_INDEX, PREDICTED_LEADS, assemble_leads


@dataclass(frozen=True)
class LinearBaseline:
    weights: np.ndarray
    """(5, 3): rows I, V2, V3, V4, V6; columns II, V1, V5."""
    bias: np.ndarray
    """(5,) mV."""

    @classmethod
    def fit(cls, signals: np.ndarray) -> LinearBaseline:
        """Least squares over every sample of ``signals`` (n, 12, samples) in standard lead order."""
        gram = np.zeros((4, 4))
        cross = np.zeros((4, 5))
        for s in range(0, len(signals), 512):          # normal equations, in chunks (bounded memory)
            chunk = np.asarray(signals[s : s + 512], dtype=np.float64)
            x = chunk[:, list(INPUT_INDEX)].transpose(1, 0, 2).reshape(3, -1)
            y = chunk[:, list(PREDICTED_INDEX)].transpose(1, 0, 2).reshape(5, -1)
            a = np.vstack([x, np.ones((1, x.shape[1]))])
            gram += a @ a.T
            cross += a @ y.T
        coef = np.linalg.solve(gram, cross)  # (4, 5)
        return cls(weights=coef[:3].T.copy(), bias=coef[3].copy())

    def predict_independent(self, x_in: np.ndarray) -> np.ndarray:
        """(…, 3, n) II, V1, V5 → (…, 5, n) I, V2, V3, V4, V6."""
        x_in = np.asarray(x_in, dtype=np.float32)
        out = np.einsum("ij,...jn->...in", self.weights.astype(np.float32), x_in)
        return out + self.bias.astype(np.float32)[:, None]

    def reconstruct(self, x_in: np.ndarray) -> np.ndarray:
        """(…, 3, n) II, V1, V5 → (…, 12, n) standard leads."""
        return assemble_leads(np.asarray(x_in, dtype=np.float32), self.predict_independent(x_in))

    def to_dict(self) -> dict[str, object]:
        return {"inputs": list(INPUT_LEADS), "outputs": list(PREDICTED_LEADS),
                "weights": self.weights.tolist(), "bias": self.bias.tolist(),
                "note": "predicted = weights @ [II, V1, V5] + bias (mV); III, aVR, aVL, aVF derived from I, II"}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> LinearBaseline:
        d = json.loads(Path(path).read_text())
        if tuple(d.get("inputs", ())) != INPUT_LEADS or tuple(d.get("outputs", ())) != PREDICTED_LEADS:
            raise ValueError(f"{path}: not a linear reconstruction baseline for {INPUT_LEADS} -> {PREDICTED_LEADS}")
        w, b = np.asarray(d["weights"], dtype=np.float64), np.asarray(d["bias"], dtype=np.float64)
        if w.shape != (5, 3) or b.shape != (5,):
            raise ValueError(f"{path}: weights must be 5x3 and bias 5, got {w.shape} and {b.shape}")
        return cls(weights=w, bias=b)
