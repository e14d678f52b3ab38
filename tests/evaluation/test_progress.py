"""Progress of long evaluations: records done / total, elapsed and stream time, as a bar or as lines."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import wfdb
from rich.console import Console

from evaluation.progress import LineProgress, RichProgress, format_duration, progress_for
from evaluation.qrs import evaluate
from firmware_sim.synthesis import synthesize


class _Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_line_progress_writes_a_line_every_few_seconds_and_at_the_end() -> None:
    out, clock = io.StringIO(), _Clock()
    p = LineProgress("eval alarms", out, every_s=5.0, clock=clock)
    p.start(3)
    p.stream(30.0)
    assert out.getvalue() == ""                     # not yet: less than every_s since the start
    clock.now += 6.0
    p.record_done("cpsc2021/data_1_1", 120.0)
    clock.now += 1.0
    p.stream(61.0)                                  # the second record, 61 s in
    p.finish()
    lines = out.getvalue().splitlines()
    assert lines == ["eval alarms: records 1/3, elapsed 6.0s, stream time 2m00s",
                     "eval alarms: records 1/3, elapsed 7.0s, stream time 3m01s"]


def test_durations_read_naturally() -> None:
    assert [format_duration(s) for s in (3.04, 123.0, 3723.0)] == ["3.0s", "2m03s", "1h02m03s"]


def test_a_pipe_gets_lines_a_terminal_a_bar() -> None:
    assert isinstance(progress_for("x", io.StringIO()), LineProgress)
    screen = io.StringIO()
    bar = RichProgress("eval qrs", Console(file=screen, force_terminal=True, width=120))
    bar.start(2)
    bar.record_done("100", 1805.0)
    bar.finish()
    text = screen.getvalue()
    assert "eval qrs" in text and "1/2" in text and "30m05s" in text


def test_evaluation_reports_every_record_and_its_stream_time(tmp_path: Path) -> None:
    for k, name in enumerate(("a", "b")):
        syn = synthesize("sinus", seconds=20, fs=250.0, seed=k)
        wfdb.wrsamp(name, fs=250, units=["mV"], sig_name=["II"], p_signal=syn.lead("II")[:, None], fmt=["16"],
                    write_dir=str(tmp_path))
        wfdb.wrann(name, "atr", np.asarray(syn.beats), ["N"] * syn.beats.size, write_dir=str(tmp_path))
    out = io.StringIO()
    evaluate(tmp_path, progress=LineProgress("eval qrs", out, every_s=0.0))
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("eval qrs: records 2/2") and lines[-1].endswith("stream time 40.0s")
    assert any("records 1/2" in line for line in lines)
