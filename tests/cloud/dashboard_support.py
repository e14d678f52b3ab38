"""Helpers for the dashboard tests: headless Chromium, a static file server, 12-lead windows, artefacts.

Chromium is the Debian package (``/usr/bin/chromium``) driven by the playwright Python package; the
tests never download a browser. Without it they skip with the reason, except under ``CI=true``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from cloud.dashboard import STATIC_DIR
from protocol.leads import STANDARD_LEADS, WEARABLE_LEADS
from protocol.window_payload import EcgWindow
from tests.conftest import skip_or_fail

CHROMIUM = Path(os.environ.get("ECGSTREAM_CHROMIUM", "/usr/bin/chromium"))
"""The system Chromium the tests drive (Debian package ``chromium``)."""

REPO = Path(__file__).resolve().parents[2]


def require_chromium() -> Path:
    """The Chromium binary, or skip (fail under CI=true) when it or playwright is missing."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        skip_or_fail(f"the playwright package is not installed ({exc})")
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(f"no Chromium at {CHROMIUM} (install the Debian package: apt-get install chromium)")
    return CHROMIUM


def artifacts_dir() -> Path:
    """Folder for test artefacts (screenshots): ``$ECGSTREAM_TEST_ARTIFACTS`` or ``tests/artifacts``."""
    root = Path(os.environ.get("ECGSTREAM_TEST_ARTIFACTS") or REPO / "tests" / "artifacts")
    out = root / "dashboard"
    out.mkdir(parents=True, exist_ok=True)
    return out


class _StaticHandler(SimpleHTTPRequestHandler):
    """Serves the dashboard's files as the API does: ``/`` → index.html, ``/static/<f>`` → the file,
    plus ``/blank.html``, an empty page to import the modules into."""

    def translate_path(self, path: str) -> str:
        clean = path.split("?", 1)[0].split("#", 1)[0]
        if clean.startswith("/static/"):
            return super().translate_path("/" + clean[len("/static/"):])
        if clean == "/":
            return str(STATIC_DIR / "index.html")
        return str(STATIC_DIR / "__missing__")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.split("?", 1)[0] == "/blank.html":
            body = b"<!doctype html><html lang='en'><head><meta charset='utf-8'>" \
                   b"<link rel='stylesheet' href='/static/style.css'></head><body><main id='host'></main></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass


@contextmanager
def static_server() -> Iterator[str]:
    """Serve the dashboard's static files on a free port of 127.0.0.1; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_StaticHandler, directory=str(STATIC_DIR)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def edge_window(patient_id: str, device_id: str, *, t0_us: int, rhythm: str = "vt", seconds: float = 10.0,
                fs_hz: int = 500, seed: int = 3) -> EcgWindow:
    """A 12-lead window as the edge sends it: II, V1, V5 measured, the other nine reconstructed with a
    per-sample uncertainty (half-width of the 90 % band). The signal is the simulator's ``rhythm``; the
    "reconstruction" is the simulator's own lead plus a small error, which is all a rendering test needs."""
    from firmware_sim.synthesis import synthesize

    n = int(round(seconds * fs_hz))
    mv = synthesize(rhythm, seconds=seconds, fs=fs_hz, seed=seed).signals.T[:, :n]
    rng = np.random.default_rng(seed)
    reconstructed = tuple(lead for lead in STANDARD_LEADS if lead not in WEARABLE_LEADS)
    rows = [STANDARD_LEADS.index(lead) for lead in reconstructed]
    t = np.arange(n) / fs_hz
    slope = np.abs(np.gradient(mv[rows], axis=1)) * fs_hz  # mV/s: the model is least sure on steep QRS edges
    unc_mv = np.minimum(0.04 + 0.04 * rng.random((len(rows), 1)) + 0.004 * slope, 0.4)
    drift = 0.03 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4, (len(rows), 1)) * t + rng.uniform(0, 6.3, (len(rows), 1)))
    mv = mv.copy()
    mv[rows] = mv[rows] * rng.uniform(0.9, 1.1, (len(rows), 1)) + drift  # smooth, bounded "reconstruction error"
    lsb_nv = 1000
    samples = np.clip(np.rint(mv * 1e6 / lsb_nv), -32768, 32767).astype(np.int16)
    uncertainty = np.clip(np.rint(unc_mv * 1e6 / lsb_nv), 0, 32767).astype(np.int16)
    return EcgWindow(window_id=EcgWindow.new_id(), patient_id=patient_id, device_id=device_id, t0_us=t0_us,
                     fs_hz=fs_hz, leads=STANDARD_LEADS, samples=samples, reconstructed=reconstructed,
                     uncertainty=uncertainty, lsb_nv=lsb_nv)


def window_json(window: EcgWindow) -> dict[str, Any]:
    """A window in the shape ``GET /api/windows/{id}`` returns (mV as floats)."""
    mv = window.millivolts()
    unc = window.uncertainty_mv()
    return {
        "window_id": window.window_id, "patient_id": window.patient_id, "device_id": window.device_id,
        "t0_us": window.t0_us, "fs_hz": window.fs_hz, "leads": list(window.leads),
        "reconstructed": list(window.reconstructed),
        "samples_mv": np.round(mv, 4).tolist(),
        "uncertainty_mv": {} if unc is None else {
            lead: np.round(unc[i], 4).tolist() for i, lead in enumerate(window.reconstructed)},
    }


def parse_path_points(d: str) -> np.ndarray:
    """The (x, y) vertices of an SVG path made of absolute M/L commands (as strip.js writes traces)."""
    import re

    numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", d)]
    return np.asarray(numbers, dtype=float).reshape(-1, 2)
