"""The models: definitions, data sets, training, evaluation, ONNX export and the shipped artifacts.

``models.runtime`` (ONNX in, numpy out) and ``models.preprocessing`` are what the edge and the cloud
load; they never import torch. Training and export code (``models.*.train``, ``export``) use torch.
Every artifact under ``models/artifacts/`` has a model card beside it.
"""
