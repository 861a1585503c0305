"""Exports: atomic writes, and log text escaped for each target format."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Iteration, RunInfo
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.outputs import export, writing

NOW = datetime(2025, 11, 14, 12, 0)
HOSTILE = '=HYPERLINK("http://x")<script>alert(1)</script>[bold]|\x1b]8;;http://evil\x07x\x1b[31m'


def snapshot_with_name(name: str) -> Snapshot:
    agg = RunAggregator()
    agg.add(RunInfo(name=name, target=100))
    for i in range(0, 50, 10):
        agg.add(Iteration(iter=i, loss=2.0, time_ms=1000.0))
    return Snapshot(NOW, (RunRow(name, "/runs/a.log", "nanogpt_stdout", agg.stats(now=NOW)),))


def test_csv_defuses_formulas_and_strips_escapes() -> None:
    text = export.render(snapshot_with_name(HOSTILE), "csv")
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["run"].startswith("'=HYPERLINK")
    assert "\x1b" not in text and "\x07" not in text


def test_html_escapes_markup() -> None:
    text = export.render(snapshot_with_name(HOSTILE), "html")
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "\x1b" not in text


def test_markdown_escapes_pipes() -> None:
    text = export.render(snapshot_with_name("a|b"), "md")
    assert "a\\|b" in text


def test_markdown_shows_markup_in_names_literally() -> None:
    """Raw HTML, emphasis, links and code in a run name stay text in the .md
    (a markdown renderer would otherwise render or run them); the HTML
    export shows the name as it is, without markdown's backslashes."""
    name = "x<img src=y>*b*[l](u)`c`\\z_run_1"
    text = export.render(snapshot_with_name(name), "md")
    assert "x\\<img src=y\\>\\*b\\*\\[l\\](u)\\`c\\`\\\\z_run_1" in text
    assert "<img" not in text.replace("\\<img", "")
    page = export.render(snapshot_with_name("a|b<i>"), "html")
    assert "a|b&lt;i&gt;" in page and "a\\|b" not in page


def test_json_keeps_the_name_but_is_valid() -> None:
    data = json.loads(export.render(snapshot_with_name(HOSTILE), "json"))
    assert data["runs"][0]["run"] == HOSTILE  # JSON escapes; consumers see the true name


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    export.write_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")

    def full_disk(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writing.os, "replace", full_disk)
    with pytest.raises(OSError):
        export.write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_export_writes_three_formats(tmp_path: Path) -> None:
    paths = export.export(snapshot_with_name("run"), tmp_path)
    assert sorted(p.suffix for p in paths) == [".csv", ".json", ".md"]
    assert all(p.parent == tmp_path and p.stat().st_size > 0 for p in paths)


def test_runs_with_one_name_are_told_apart() -> None:
    from trainwatch.core.rows import disambiguate

    base = snapshot_with_name("train").rows[0]
    rows = [
        RunRow("train", "/runs/a/seed1/train.log", "nanogpt_stdout", base.stats),
        RunRow("train", "/runs/b/seed1/train.log", "nanogpt_stdout", base.stats),
        RunRow("other", "/runs/c/train.log", "nanogpt_stdout", base.stats),
    ]
    names = [row.name for row in disambiguate(rows)]
    assert names == ["train · a/seed1", "train · b/seed1", "other"]


def test_json_and_csv_keep_the_printed_precision_and_tables_round(tmp_path: Path) -> None:
    """METRICS.md, precision: a loss printed 2.921752 exports as 2.921752
    (it exported as 2.9218 when the contract rounded to 4 digits); the
    tables round for people."""
    from trainwatch.cli import main

    log = tmp_path / "train.log"
    log.write_text(
        "max_iters = 100\n"
        "iter 0: loss 3.104518, time 900.00ms, mfu -100.00%\n"
        "iter 10: loss 2.921752, time 123.456789ms, mfu 31.415926%\n"
    )
    out = tmp_path / "snap.json"
    assert main(["snapshot", str(log), "-f", "json", "-o", str(out)]) == 0
    run = json.loads(out.read_text())["runs"][0]
    assert (run["loss"], run["mfu_now_pct"]) == (2.921752, 31.415926)
    assert run["train_time_logged_s"] == pytest.approx(1.023456789)  # 900 + 123.456789 ms, unrounded
    out_csv = tmp_path / "snap.csv"
    assert main(["snapshot", str(log), "-f", "csv", "-o", str(out_csv)]) == 0
    row = next(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert (row["loss"], row["mfu_now_pct"]) == ("2.921752", "31.415926")
    out_md = tmp_path / "snap.md"
    assert main(["snapshot", str(log), "-f", "md", "-o", str(out_md)]) == 0
    assert "2.9218" in out_md.read_text() and "2.921752" not in out_md.read_text()


def test_csv_lists_hangs_as_text() -> None:
    from trainwatch.core.records import RunInfo as Info

    agg = RunAggregator()
    agg.add(Info(name="hung", target=100, eval_interval=50, eval_at_start=False))
    for i in range(1, 30):
        agg.add(Iteration(iter=i, loss=2.0, time_ms=600_000.0 if i == 20 else 1000.0))
    snapshot = Snapshot(NOW, (RunRow("hung", "/runs/a.log", "nanogpt_stdout", agg.stats(now=NOW)),))
    row = next(csv.DictReader(io.StringIO(export.render(snapshot, "csv"))))
    assert row["hangs"] == "iter=20 seconds=600.0"
    assert json.loads(export.render(snapshot, "json"))["runs"][0]["hangs"] == [{"iter": 20, "seconds": 600.0}]
