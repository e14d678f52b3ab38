"""``ecgstream plot``: records, synthetic strips and stored alert windows drawn on true-size ECG paper."""

from __future__ import annotations

import asyncio
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from cloud.store import Store, upgrade_database
from ecgstream.cli import main
from ecgstream.plotting import MM_PER_MV, MM_PER_S, plot_strip, strip_from_record, strip_from_synthesis
from ecgstream.plotting.grid import MM_PER_INCH
from firmware_sim.synthesis import synthesize
from protocol.leads import STANDARD_LEADS
from protocol.messages import Alert, AlertCategory, Priority
from protocol.window_payload import EcgWindow


def _png_size_mm(path: Path, dpi: int = 200) -> tuple[float, float]:
    image = matplotlib.image.imread(path)
    return image.shape[1] / dpi * MM_PER_INCH, image.shape[0] / dpi * MM_PER_INCH


def test_the_paper_runs_at_25_mm_per_second(tmp_path: Path) -> None:
    short = plot_strip(strip_from_synthesis("sinus", seconds=10.0, leads=["II"]), tmp_path / "short.png")
    long = plot_strip(strip_from_synthesis("sinus", seconds=14.0, leads=["II"]), tmp_path / "long.png")
    (w_short, h_short), (w_long, h_long) = _png_size_mm(short), _png_size_mm(long)
    assert w_long - w_short == pytest.approx(4.0 * MM_PER_S, abs=0.5)
    assert h_long == pytest.approx(h_short, abs=0.5)


def test_a_taller_signal_gets_a_taller_row_at_10_mm_per_mv(tmp_path: Path) -> None:
    from ecgstream.plotting import Strip

    t = np.arange(1000) / 250.0
    small = Strip(np.sin(2 * np.pi * t)[:, None] * 1.0, 250.0, ("II",))
    big = Strip(np.sin(2 * np.pi * t)[:, None] * 3.0, 250.0, ("II",))
    h_small = _png_size_mm(plot_strip(small, tmp_path / "s.png"))[1]
    h_big = _png_size_mm(plot_strip(big, tmp_path / "b.png"))[1]
    assert h_big - h_small == pytest.approx(4.0 * MM_PER_MV, abs=5.5)  # rows are whole 5 mm squares


def test_a_synthetic_strip_carries_the_true_beats_and_rhythm() -> None:
    strip = strip_from_synthesis("vt", seed=2, seconds=6.0, fs=250.0)
    truth = synthesize("vt", seconds=6.0, fs=250.0, seed=2)
    assert strip.lead_names == STANDARD_LEADS
    assert [s for _, s in strip.beats] == list(truth.beat_labels)
    assert strip.rhythms == ((0.0, "(VT"),)


@pytest.mark.shared_data
def test_a_wfdb_record_is_drawn_with_its_beat_and_rhythm_annotations(data: Path, tmp_path: Path) -> None:
    strip = strip_from_record(data / "mitdb/208", start_s=60.0, seconds=10.0)
    assert strip.lead_names == ("II", "V1") and strip.start_s == pytest.approx(60.0)
    symbols = {s for _, s in strip.beats}
    assert {"N", "V"} <= symbols and all(0 <= t < 10 for t, _ in strip.beats)
    assert strip.rhythms and strip.rhythms[0][0] == 0.0
    out = tmp_path / "208.pdf"
    assert main(["plot", str(data / "mitdb/208"), "--start", "60", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"%PDF")


def test_plot_cli_writes_a_png_of_a_csv_record_given_its_rate(tmp_path: Path) -> None:
    csv = tmp_path / "strip.csv"
    t = np.arange(2500) / 250.0
    rows = "\n".join(f"{np.sin(2 * np.pi * x):.4f},{np.cos(2 * np.pi * x):.4f}" for x in t)
    csv.write_text("II,V5\n" + rows + "\n")
    out = tmp_path / "strip.png"
    assert main(["plot", str(csv), "--fs", "250", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")


def _stored_alert(url: str) -> tuple[str, str]:
    n = 5000
    mv = synthesize("vt", seconds=10.0, fs=500.0, seed=1).signals.T[:, :n]
    reconstructed = tuple(lead for lead in STANDARD_LEADS if lead not in ("II", "V1", "V5"))
    window = EcgWindow(window_id=EcgWindow.new_id(), patient_id="pat-plot", device_id="dev-plot",
                       t0_us=1_760_000_000_000_000, fs_hz=500, leads=STANDARD_LEADS,
                       samples=np.clip(np.rint(mv * 1000), -32768, 32767).astype(np.int16),
                       reconstructed=reconstructed, lsb_nv=1000)
    alert_id = Alert.new_id()
    alert = Alert(alert_id=alert_id, patient_id="pat-plot", device_id="dev-plot", alert_type="vt",
                  category=AlertCategory("clinical"), priority=Priority("high"),
                  onset_gateway_us=window.t0_us + 4_000_000, window_id=window.window_id, message="vt raised",
                  details={"event": "raised", "episode_id": alert_id, "family": "vt"})

    async def store() -> None:
        async with Store(url) as s:
            await s.store_window(window)
            await s.store_alert(alert)

    upgrade_database(url)
    asyncio.run(store())
    return alert.alert_id, window.window_id


def test_a_stored_alerts_window_is_drawn_with_reconstructed_leads_marked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    alert_id, window_id = _stored_alert(url)
    out = tmp_path / "alert.png"
    assert main(["plot", "--alert", alert_id, "--db", url, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "12 leads, 9 reconstructed" in said and out.exists()
    assert main(["plot", "--window", window_id, "--db", url, "--leads", "II,V2", "--out", str(tmp_path / "w.pdf")]) == 0
    assert "2 leads, 1 reconstructed" in capsys.readouterr().out
    assert main(["plot", "--alert", "8a3c0b52-0000-4000-8000-000000000000", "--db", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not stored" in err[0]


def test_rhythm_labels_start_where_the_record_says_and_carry_into_later_strips(tmp_path: Path) -> None:
    from firmware_sim.export import write_wfdb_with_truth
    from firmware_sim.records import write_annotations

    signals = synthesize("sinus", seconds=20.0, fs=250.0, seed=3).signals
    header, _ = write_wfdb_with_truth(tmp_path / "rec", signals, 250.0, STANDARD_LEADS, {})
    write_annotations(tmp_path / "rec", 250.0, [(500, "N"), (3000, "V")], [(1000, "(AFIB"), (4000, "(VT")])
    first = strip_from_record(header, seconds=10.0, leads=["II"])
    assert first.rhythms == ((4.0, "(AFIB"),) and first.beats == ((2.0, "N"),)
    later = strip_from_record(header, start_s=10.0, seconds=10.0, leads=["II"])
    assert later.rhythms == ((0.0, "(AFIB"), (6.0, "(VT")) and later.beats == ((2.0, "V"),)
