"""The dashboard's ECG strip renderer (strip.js) in headless Chromium, fed a simulator window.

No cloud service: the static files are served by a tiny local server and the module is imported into a
blank page. What a clinician relies on is checked: paper speed and gain (25 mm/s, 10 mm/mV) against
the sample values, the 3×4 + rhythm-strip layout, the 1 mm / 5 mm grid, the 1 mV calibration pulse,
and reconstructed leads labelled and drawn apart from measured ones with their uncertainty band.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from cloud.dashboard import STATIC_DIR
from protocol.leads import STANDARD_LEADS
from tests.cloud.dashboard_support import (
    artifacts_dir,
    edge_window,
    parse_path_points,
    require_chromium,
    static_server,
    window_json,
)

STANDARD_ROWS = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]]


@pytest.fixture(scope="module")
def window() -> Any:
    return edge_window("pat-strip", "dev-strip", t0_us=1_760_000_000_000_000, rhythm="sinus", seed=5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (the Debian package, driven by playwright)."""
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    with static_server() as base, sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            yield b, base
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh blank page of the static server with the dashboard's stylesheet; fails on JS errors."""
    b, base = browser
    pg = b.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(f"{base}/blank.html")
    try:
        yield pg
    finally:
        pg.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _render(page: Any, win: dict[str, Any]) -> None:
    page.evaluate(
        """async (text) => {
            const { renderStrip } = await import('/static/strip.js');
            document.getElementById('host').replaceChildren(renderStrip(JSON.parse(text)));
        }""",
        json.dumps(win),  # one string: much faster through playwright than 60 000 tagged numbers
    )


def test_layout_is_the_standard_3x4_plus_rhythm_strip_at_25_mm_per_s(page: Any) -> None:
    fs, n = 500, 5000
    layout = page.evaluate(
        "async ([fs, n]) => (await import('/static/strip.js')).stripLayout({ fsHz: fs, nSamples: n })", [fs, n])
    cells = [c for c in layout["cells"] if not c["rhythm"]]
    grid = [[None] * 4 for _ in range(3)]
    for c in cells:
        grid[c["row"]][c["col"]] = c["lead"]
    assert grid == STANDARD_ROWS
    for c in cells:
        seconds = (c["sampleEnd"] - c["sampleStart"]) / fs
        assert seconds == pytest.approx(2.5)
        assert c["sampleStart"] == c["col"] * 1250  # simultaneous: column k shows seconds 2.5k..2.5k+2.5
        assert c["widthMm"] == pytest.approx(seconds * 25)
        assert c["xMm"] == pytest.approx(layout["traceX0Mm"] + 2.5 * 25 * c["col"])
    rhythm = [c for c in layout["cells"] if c["rhythm"]]
    assert [(c["lead"], c["sampleStart"], c["sampleEnd"]) for c in rhythm] == [("II", 0, n)]
    assert rhythm[0]["widthMm"] == pytest.approx(10 * 25)
    assert rhythm[0]["baselineMm"] > max(c["baselineMm"] for c in cells)  # under the 3×4 block
    for row in layout["rows"]:
        cal = row["calibration"]
        assert cal["baselineMm"] - cal["topMm"] == pytest.approx(10)  # 1 mV at 10 mm/mV

    short = page.evaluate(
        "async () => (await import('/static/strip.js')).stripLayout({ fsHz: 250, nSamples: 1000 })")
    v4 = next(c for c in short["cells"] if c["lead"] == "V4")
    assert v4["sampleStart"] == v4["sampleEnd"] == 1000  # a 4 s window has nothing for the last column


def test_traces_follow_the_samples_at_10_mm_per_mv(page: Any, window: Any) -> None:
    win = window_json(window)
    _render(page, win)
    mv = np.asarray(win["samples_mv"])
    fs = win["fs_hz"]
    leads = page.locator("[data-testid=strip-lead]").count()
    assert leads == 12
    for row, names in enumerate(STANDARD_ROWS):
        for col, lead in enumerate(names):
            g = page.locator(f"[data-testid=strip-lead][data-lead='{lead}']")
            assert int(g.get_attribute("data-row")) == row and int(g.get_attribute("data-col")) == col
            pts = parse_path_points(g.locator("path.trace").get_attribute("d"))
            x0, base = float(g.get_attribute("data-x-mm")), float(g.get_attribute("data-baseline-mm"))
            segment = mv[STANDARD_LEADS.index(lead), col * 1250:(col + 1) * 1250]
            assert len(pts) == len(segment)
            np.testing.assert_allclose(pts[:, 0], x0 + np.arange(len(segment)) / fs * 25, atol=0.006)
            np.testing.assert_allclose(pts[:, 1], base - segment * 10, atol=0.006)
    rhythm = page.locator("[data-testid=strip-rhythm]")
    assert rhythm.get_attribute("data-lead") == "II"
    pts = parse_path_points(rhythm.locator("path.trace").get_attribute("d"))
    np.testing.assert_allclose(pts[-1, 0] - pts[0, 0], (mv.shape[1] - 1) / fs * 25, atol=0.01)


def test_grid_calibration_and_square_paper(page: Any, window: Any) -> None:
    _render(page, window_json(window))
    svg = page.locator("[data-testid=ecg-strip]")
    width, height = float(svg.get_attribute("data-width-mm")), float(svg.get_attribute("data-height-mm"))
    for cls, step in (("grid-minor", 1.0), ("grid-major", 5.0)):
        d = svg.locator(f"path.{cls}").get_attribute("d")
        vertical = np.array([float(x) for x in re.findall(r"M(-?[\d.]+) 0V", d)])
        horizontal = np.array([float(y) for y in re.findall(r"M0 (-?[\d.]+)H", d)])
        for lines, extent in ((vertical, width), (horizontal, height)):
            assert np.allclose(np.diff(lines), step)
            assert lines[0] == 0 and lines[-1] == pytest.approx(np.floor(extent / step) * step)
    pulses = svg.locator("path.calibration-pulse")
    assert pulses.count() == 4  # one per row
    for i in range(4):
        assert float(pulses.nth(i).get_attribute("data-height-mm")) == pytest.approx(10.0)
    box = svg.bounding_box()
    assert box["width"] / box["height"] == pytest.approx(width / height, rel=0.01)  # 1 mm is 1 mm both ways


def test_reconstructed_leads_are_labelled_dashed_and_banded(page: Any, window: Any) -> None:
    win = window_json(window)
    _render(page, win)
    for lead in STANDARD_LEADS:
        g = page.locator(f"[data-testid=strip-lead][data-lead='{lead}']")
        label = g.locator("[data-testid=strip-lead-label]").text_content()
        style = g.locator("path.trace").evaluate(
            "p => { const s = getComputedStyle(p); return [s.stroke, s.strokeDasharray]; }")
        if lead in win["reconstructed"]:
            assert label == f"{lead} (reconstructed)"
            assert g.get_attribute("data-reconstructed") == "true"
            assert style[1] not in ("none", "")
            band = parse_path_points(g.locator("path.band").get_attribute("d"))
            col = int(g.get_attribute("data-col"))
            v = np.asarray(win["samples_mv"][STANDARD_LEADS.index(lead)])[col * 1250:(col + 1) * 1250]
            u = np.asarray(win["uncertainty_mv"][lead])[col * 1250:(col + 1) * 1250]
            base = float(g.get_attribute("data-baseline-mm"))
            upper, lower = band[: len(v)], band[len(v):][::-1]
            np.testing.assert_allclose(upper[:, 1], base - (v + u) * 10, atol=0.006)
            np.testing.assert_allclose(lower[:, 1], base - (v - u) * 10, atol=0.006)
            recon_stroke = style[0]
        else:
            assert label == lead
            assert style[1] in ("none", "")
            assert g.locator("path.band").count() == 0
            measured_stroke = style[0]
    assert recon_stroke != measured_stroke
    legend = page.locator("[data-testid=strip-legend]").text_content()
    assert "measured" in legend and "reconstructed" in legend and "25 mm/s" in legend and "10 mm/mV" in legend
    page.locator("[data-testid=ecg-strip]").screenshot(path=str(artifacts_dir() / "strip_static.png"))


def test_missing_leads_are_marked_and_ids_are_never_html(page: Any, window: Any) -> None:
    win = window_json(window)
    keep = [i for i, lead in enumerate(win["leads"]) if lead not in ("V3", "aVF")]
    win["leads"] = [win["leads"][i] for i in keep]
    win["samples_mv"] = [win["samples_mv"][i] for i in keep]
    win["reconstructed"] = [lead for lead in win["reconstructed"] if lead not in ("V3", "aVF")]
    win["window_id"] = "<img src=x onerror=alert(1)>"
    _render(page, win)
    for lead in ("V3", "aVF"):
        g = page.locator(f"[data-testid=strip-lead][data-lead='{lead}']")
        assert g.locator("[data-testid=strip-lead-label]").text_content() == f"{lead} (not available)"
        assert g.locator("path.trace").count() == 0
    assert page.locator("img").count() == 0
    assert page.locator("[data-testid=ecg-strip]").get_attribute("data-window-id") == win["window_id"]


def test_dashboard_needs_nothing_from_another_host() -> None:
    """Works offline: no CDN, no external font or script; the page loads its own modules."""
    index = (STATIC_DIR / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', index)
    assert "/static/app.js" in refs and "/static/style.css" in refs
    assert not [r for r in refs if re.match(r"(?:https?:)?//", r)]
    for name in ("app.js", "strip.js", "style.css"):
        text = (STATIC_DIR / name).read_text()
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/(?!2000/svg)", text), f"{name} refers to another host"
        assert "@import" not in text and "@font-face" not in text


def _subpaths(d: str) -> list[np.ndarray]:
    """The vertices of each ``M…L…`` piece of an SVG path."""
    return [parse_path_points(piece) for piece in re.split(r"(?=M)", d) if piece.strip()]


def test_a_window_with_gaps_draws_no_line_through_them_and_marks_them(page: Any, window: Any) -> None:
    """Samples [1000, 1400) (0.8 s of the 500 Hz window: column 0 of each row and the rhythm strip) and
    [3000, 3100) were lost: the trace and band break there, each gap is shaded in every cell it crosses."""
    win = {**window_json(window), "gaps": [[1000, 1400], [3000, 3100]]}
    _render(page, win)
    assert page.locator("[data-testid=ecg-strip]").get_attribute("data-gaps") == "2"
    fs = win["fs_hz"]
    ii = page.locator("[data-testid=strip-lead][data-lead='II']")          # column 0: samples 0..1250
    pieces = _subpaths(ii.locator("path.trace").get_attribute("d"))
    x0 = float(ii.get_attribute("data-x-mm"))
    assert [len(p) for p in pieces] == [1000, 0] or [len(p) for p in pieces] == [1000]   # stops at the gap
    assert pieces[0][-1, 0] == pytest.approx(x0 + 999 / fs * 25, abs=0.006)
    rhythm = page.locator("[data-testid=strip-rhythm]")
    pieces = _subpaths(rhythm.locator("path.trace").get_attribute("d"))
    assert [len(p) for p in pieces] == [1000, 1600, 1900]                  # 0-1000, 1400-3000, 3100-5000
    shaded = page.locator("[data-testid=strip-rhythm] [data-testid=strip-gap]")
    assert shaded.count() == 2
    assert [(int(shaded.nth(i).get_attribute("data-sample-start")), int(shaded.nth(i).get_attribute("data-sample-end")))
            for i in range(2)] == [(1000, 1400), (3000, 3100)]
    gap = shaded.nth(0)
    assert float(gap.get_attribute("width")) == pytest.approx(400 / fs * 25, abs=0.01)     # 0.8 s at 25 mm/s
    assert float(gap.get_attribute("x")) == pytest.approx(float(rhythm.get_attribute("data-x-mm")) + 2 * 25, abs=0.01)
    # a reconstructed lead's band breaks too: one closed piece per run between gaps
    avr = page.locator("[data-testid=strip-lead][data-lead='aVR']")         # column 1: samples 1250..2500
    band = avr.locator("path.band").get_attribute("d")
    assert band.count("Z") == 1 and _subpaths(band)[0][0, 0] == pytest.approx(
        float(avr.get_attribute("data-x-mm")) + 150 / fs * 25, abs=0.01)    # starts after the gap (1400)
    assert "no data" in (page.locator("[data-testid=strip-legend]").text_content() or "")


def test_a_lead_i_window_draws_lead_i_as_its_rhythm_strip(page: Any, window: Any) -> None:
    """A chest strap's window (lead I only, measured) is drawn: lead I in its cell and as the rhythm strip."""
    full = window_json(window)
    i = full["leads"].index("I")
    win = {**full, "leads": ["I"], "reconstructed": [], "samples_mv": [full["samples_mv"][i]], "uncertainty_mv": {}}
    _render(page, win)
    rhythm = page.locator("[data-testid=strip-rhythm]")
    assert rhythm.get_attribute("data-lead") == "I" and rhythm.get_attribute("data-reconstructed") == "false"
    pts = parse_path_points(rhythm.locator("path.trace").get_attribute("d"))
    assert len(pts) == len(full["samples_mv"][i])
    labels = [t or "" for t in page.locator("[data-testid=strip-lead-label]").all_text_contents()]
    assert "I" in labels and "II (not available)" in labels and "I rhythm" in labels
