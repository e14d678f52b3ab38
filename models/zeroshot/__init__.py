"""ECG–text zero-shot classification (MERL-style alignment, CKEPE-style knowledge prompts).

- :mod:`models.zeroshot.knowledge_base`: the clinical knowledge base shipped as data (``knowledge/labels.toml``);
- :mod:`models.zeroshot.prompts`: prompts built from it, training reports written from labels, the rewriter hook;
- :mod:`models.zeroshot.text`: the frozen MiniLM sentence encoder (training/export time only, torch);
- :mod:`models.zeroshot.encoder`, :mod:`models.zeroshot.train`: the ECG encoder and its contrastive training;
- :mod:`models.zeroshot.export_text`: the text encoder to ONNX for free-text labels at run time;
- :mod:`models.zeroshot.evaluate`: zero-shot macro AUROC on labelled real records.

The run-time side (numpy + onnxruntime + tokenizers, no torch) is :mod:`models.runtime.zeroshot`.
"""
