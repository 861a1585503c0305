"""The load gauge and stat sweep behind the watcher's busy mode (trainwatch.ingest.statpoll)."""

from __future__ import annotations

import os
from pathlib import Path

from trainwatch.ingest.statpoll import LoadGauge, StatSweep, sweep_interval


def test_gauge_goes_busy_above_the_busy_rate_and_calm_below_the_calm_rate() -> None:
    gauge = LoadGauge(busy_rate=20, calm_rate=5, window=3.0)
    t = 100.0
    # 10 changed logs a second: between the two rates, so events it stays.
    for _ in range(40):
        t += 0.5
        assert not gauge.note(5, t)
    assert not gauge.busy
    # 30 a second for a window: polling.
    flips = []
    for _ in range(12):
        t += 0.5
        flips.append(gauge.note(15, t))
    assert gauge.busy and flips.count(True) == 1
    # Back to 10 a second: above the calm rate, so it stays busy (no flapping).
    for _ in range(40):
        t += 0.5
        assert not gauge.note(5, t)
    assert gauge.busy
    # 2 a second: calm again, once a whole window says so.
    calm_at = None
    for k in range(12):
        t += 0.5
        if gauge.note(1, t):
            calm_at = k
    # The window's rate falls under 5 a second once most of the busier notes left it (14 / 3 s).
    assert not gauge.busy and calm_at == 3


def test_gauge_keeps_a_new_mode_for_a_window() -> None:
    gauge = LoadGauge(busy_rate=20, calm_rate=5, window=3.0)
    assert gauge.note(100, 10.0)  # a burst: busy at once
    assert gauge.busy
    assert not gauge.note(0, 11.0) and not gauge.note(0, 12.9)  # quiet, but too soon to judge
    assert gauge.note(0, 13.1) and not gauge.busy


def test_sweep_reports_new_grown_replaced_and_deleted_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("1\n")
    b.write_text("1\n")
    sweep = StatSweep()
    paths = [str(a), str(b)]
    assert sweep.changed(paths) == paths  # first sweep: everything
    assert sweep.changed(paths) == []
    with open(a, "a") as out:
        out.write("2\n")
    assert sweep.changed(paths) == [str(a)]
    replacement = tmp_path / "b.new"
    replacement.write_text("1\n")  # same size, new inode
    os.replace(replacement, b)
    assert sweep.changed(paths) == [str(b)]
    a.unlink()
    assert sweep.changed(paths) == [str(a)]
    assert sweep.changed(paths) == []  # still gone: reported once
    sweep.forget()
    assert sweep.changed(paths) == paths


def test_sweeps_slow_down_as_more_logs_change() -> None:
    assert sweep_interval(0) == sweep_interval(50) == 1.0  # once a second, as top
    assert sweep_interval(60) == 1.5  # about 50 logs read a second, in half seconds
    assert sweep_interval(100) == 2.0
    assert sweep_interval(10_000) == 2.0  # at least every two seconds
