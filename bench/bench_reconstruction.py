"""3→12 lead reconstruction speed: ONNX Runtime CPU latency per 10 s window, batch 1 and 64.

Run: ``.venv/bin/python -m bench reconstruction``. Prints latency per window and windows/s for the
shipped VAE (``models/artifacts/reconstruction_vae.onnx``) with ONNX Runtime on the CPU, against
baselines measured in the same run: the linear least-squares baseline in numpy, and the same VAE in
PyTorch eager (when torch is installed). Goal: ≥ 200 windows/s at batch 64 on 2 cores. Nothing is asserted.
"""

from __future__ import annotations

import os
import platform
from functools import partial

import numpy as np

from bench.timing import best_time
from models.runtime.onnx_model import ARTIFACTS, DEFAULT_RECONSTRUCTION, OnnxModel

WINDOW = 1250


def _torch_model():  # type: ignore[no-untyped-def]
    try:
        import onnx
        import torch

        from models.reconstruction.vae import ReconstructionVAE
    except ImportError:
        return None
    import json

    proto = onnx.load(str(DEFAULT_RECONSTRUCTION))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["ecgstream"])
    ckpt = ARTIFACTS / "checkpoints" / "last.pt"
    if not ckpt.exists():
        return None
    state = torch.load(ckpt, weights_only=False)
    cfg = state["config"]["model"]
    model = ReconstructionVAE(cfg["width"], cfg["latent_channels"])
    model.load_state_dict(state["model"])
    model.band_scale.copy_(torch.tensor(meta["band_scale"]))
    return model.eval()


def main() -> None:
    from models.reconstruction.linear import LinearBaseline

    rng = np.random.default_rng(0)
    cpu = platform.processor() or platform.machine()
    print(f"{os.cpu_count()} CPU(s) ({cpu}); windows of 3 x {WINDOW} samples (10 s at 125 Hz); best of repeats")
    baseline = LinearBaseline.load(ARTIFACTS / "reconstruction_linear.json")
    sess = OnnxModel(DEFAULT_RECONSTRUCTION, providers=["cpu"])
    torch_model = _torch_model()
    print(f"{'what':<34} {'batch':>5} {'ms/batch':>9} {'ms/window':>10} {'windows/s':>10} {'time vs linear':>15}")
    for batch in (1, 64):
        x = rng.normal(0, 0.5, (batch, 3, WINDOW)).astype(np.float32)
        reps = 200 if batch == 1 else 20
        t_lin = best_time(partial(baseline.reconstruct, x), reps, warmup=True)
        rows = [("linear baseline (numpy)", t_lin)]
        rows.append(("VAE, ONNX Runtime CPU FP32", best_time(partial(sess.run, inputs=x), reps, warmup=True)))
        if torch_model is not None:
            import torch

            with torch.no_grad():
                xt = torch.from_numpy(x)
                rows.append(("VAE, PyTorch eager CPU", best_time(partial(torch_model, xt), max(5, reps // 4), warmup=True)))
        for name, t in rows:
            print(f"{name:<34} {batch:>5} {t * 1e3:9.2f} {t * 1e3 / batch:10.3f} {batch / t:10.0f} {t / t_lin:15.1f}x")


if __name__ == "__main__":
    main()
