"""Hostile text in run names, config values, file names and log lines.

Rich markup (``[bold]``, ``[link=…]``, ``[/]``), terminal escape sequences
(CSI, OSC hyperlinks and titles, the 8-bit CSI ``\\x9b``) and control
characters must reach the terminal as harmless literal text: markup shown
as typed, control characters stripped. Exports escape for their format:
HTML-escaped, spreadsheet formulas defused in CSV, pipes escaped in
markdown, JSON valid.

Names arrive by three roads, and each is tested: the TOML config, a log's
own fields (the seed JSON's ``run_name`` and ``config.out_dir``, nanoGPT's
``wandb_run_name = '…'`` echo) and the file name itself.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import pytest

from trainwatch.cli import main
from trainwatch.config import load_names
from trainwatch.core.names import Names
from trainwatch.core.rows import Snapshot
from trainwatch.ingest.publish import build
from trainwatch.ingest.source import LogSource
from trainwatch.outputs.export import render, rich_table

from .helpers import strict_json

NOW = datetime(2025, 11, 20, 12, 0)

#: What a terminal must never receive from log text.
EVIL = {
    "markup": "[bold]boom[/] [link=http://x]click[/link] [/]",
    "osc-link": "\x1b]8;;http://evil\x07click\x1b]8;;\x07",
    "osc-title": "\x1b]0;pwned\x07title",
    "csi": "\x1b[2Jclear\x1b[31mred",
    "c0": "a\rb\x08c\x00d\x7fe",
    "c1": "x\x9b31my\x85z",
    "formula": '=HYPERLINK("http://evil","x")',
    "plus": "+1+2",
    "minus": "-2-3",
    "at": "@SUM(A1)",
    "tab": "\tTAB",
    "pipe": "a|b|c",
    "html": "<script>alert(1)</script>&amp;",
}
#: Escape sequences a rendered table may contain: Rich's own SGR styling only.
SGR = re.compile(r"\x1b\[[0-9;]*m")
FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def seed_doc(run_name: str, out_dir: str, gpu: str | None = None, iters: int = 20) -> dict[str, object]:
    return {
        "run_name": run_name,
        "start_time": "2025-11-13T22:50:09",
        "startup_info": {"hardware": {"gpu_name": gpu, "precision": gpu, "num_gpus": 2}} if gpu else {},
        "config": {"out_dir": out_dir, "eval_interval": 1000, "log_interval": 10, "max_iters": 2000},
        "training_iterations": [
            {"iter": i * 10, "loss": 3.0, "time_ms": 1000.0, "mfu": {"mfu_percent": 30.0}} for i in range(iters)
        ],
        "eval_steps": [],
        "checkpoints": [],
    }


def evil_folder(root: Path) -> Path:
    """One run per attack and road: config name, log fields, nanoGPT echo, file name."""
    root.mkdir(parents=True, exist_ok=True)
    for key, evil in EVIL.items():
        (root / f"cfg_{key}.json").write_text(json.dumps(seed_doc(f"cfg_{key}", "out")))
        (root / f"log_{key}.json").write_text(json.dumps(seed_doc(f"{evil} id", f"out-{evil}", gpu=evil)))
        lines = [f"wandb_run_name = '{evil}'", *(f"iter {i}: loss 2.0, time 100.00ms, mfu 10.00%" for i in range(20))]
        (root / f"nano_{key}.log").write_text("\n".join(lines) + "\n")
    # A file name that is itself an attack (the name is shown when the log has none).
    (root / "\x1b]0;pwned\x07[bold]file\x1b[2J.log").write_text("iter 1: loss 2.0, time 100.00ms, mfu 10.00%\n")
    (root / "\x1b[31mnot a log\x07.txt").write_text("hello\n")  # listed as unrecognised
    return root


def evil_config(folder: Path) -> Path:
    config = folder.parent / "names.toml"
    config.write_text("".join(f"[runs.cfg_{key}]\nname = {json.dumps(evil)}\n" for key, evil in EVIL.items()))
    return config


def evil_snapshot(tmp_path: Path) -> Snapshot:
    folder = evil_folder(tmp_path / "runs")
    names = load_names(evil_config(folder))
    sources = []
    for path in sorted(folder.iterdir()):
        source = LogSource(path)
        source.refresh()
        source.flush()
        sources.append(source)
    return build(sources, names, NOW)


def test_every_road_brings_the_attack(tmp_path: Path) -> None:
    """The fixture is what it claims: each hostile string reaches a run's name."""
    snapshot = evil_snapshot(tmp_path)
    for key, evil in EVIL.items():
        by_config = [r.name for r in snapshot.rows if r.path.endswith(f"cfg_{key}.json")]
        by_log = [r.name for r in snapshot.rows if r.path.endswith((f"log_{key}.json", f"nano_{key}.log"))]
        assert evil in by_config[0], key
        assert any(evil in name for name in by_log) or "/" in evil or "\r" in evil, (key, by_log)
    assert any("[bold]file" in row.name for row in snapshot.rows)
    assert any("not a log" in path for path, _ in snapshot.unrecognised)


def rendered(snapshot: Snapshot, color: bool) -> str:
    from rich.console import Console

    console = Console(
        file=io.StringIO(),
        width=400,
        force_terminal=color,
        color_system="truecolor" if color else None,
        highlight=False,
    )
    console.print(rich_table(snapshot, 400))
    return console.file.getvalue()  # type: ignore[attr-defined,no-any-return]


def test_table_shows_names_literally(tmp_path: Path) -> None:
    snapshot = evil_snapshot(tmp_path)
    for color in (True, False):
        out = rendered(snapshot, color)
        bare = SGR.sub("", out) if color else out
        assert "\x1b" not in bare and not FORBIDDEN.search(bare.replace("\n", "")), repr(
            FORBIDDEN.search(bare.replace("\n", ""))
        )
        assert "[bold]boom[/] [link=http://x]click[/link] [/]" in bare  # markup as typed
        assert "8;;http://evil" not in out  # the hyperlink's target went with its escape
        assert "[bold]file" in bare
        assert "\\[" not in bare  # markup escaping must not show either


def test_snapshot_cli_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = evil_folder(tmp_path / "runs")
    assert main(["snapshot", str(folder), "--config", str(evil_config(folder)), "--now", "2025-11-20T12:00"]) == 0
    out, err = capsys.readouterr()
    for text in (out, err):
        assert "\x1b" not in text and not FORBIDDEN.search(text.replace("\n", "")), repr(text[:2000])
    assert "[bold]" in out  # markup shown as typed (the 100-column table may shorten the name after it)


def test_html_export(tmp_path: Path) -> None:
    text = render(evil_snapshot(tmp_path), "html")
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert not FORBIDDEN.search(text.replace("\n", ""))
    assert "[bold]boom[/]" in text  # shown as typed


def test_csv_export(tmp_path: Path) -> None:
    text = render(evil_snapshot(tmp_path), "csv")
    assert not FORBIDDEN.search(text.replace("\n", "").replace("\r", ""))
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        for column, cell in row.items():
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r") or _number(cell), (column, cell)
    assert any(row["run"].startswith("'=HYPERLINK") for row in rows)


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_markdown_export(tmp_path: Path) -> None:
    snapshot = evil_snapshot(tmp_path)
    text = render(snapshot, "md")
    assert not FORBIDDEN.search(text.replace("\n", ""))
    header = text.splitlines()[0]
    columns = header.count("|")
    for line in text.splitlines()[2 : 2 + len(snapshot.rows)]:
        assert len(re.findall(r"(?<!\\)\|", line)) == columns, line  # no cell split by a name's pipe
    assert "a\\|b\\|c" in text


def test_json_export(tmp_path: Path) -> None:
    snapshot = evil_snapshot(tmp_path)
    data = strict_json(render(snapshot, "json"))
    assert sorted(r["run"] for r in data["runs"]) == sorted(row.name for row in snapshot.rows)
    assert all(isinstance(r["path"], str) for r in data["runs"])


# ------------------------------------------------------------------- app


class FakeSource:
    mode = "inotify"
    network_paths: ClassVar[list[Path]] = []

    def __init__(self, publish: Callable[[Snapshot], None], first: Snapshot) -> None:
        self.publish, self.first = publish, first

    def start(self) -> None:
        self.publish(self.first)

    def stop(self) -> None: ...
    def refresh_now(self) -> None: ...
    def set_target(self, target: int | None) -> None: ...


async def test_app_shows_names_literally(tmp_path: Path) -> None:
    from rich.console import Console

    from trainwatch.tui.app import TrainwatchApp
    from trainwatch.tui.runs_table import RunsTable

    snapshot = evil_snapshot(tmp_path)
    app = TrainwatchApp(lambda publish: FakeSource(publish, snapshot), clock=lambda: NOW)
    async with app.run_test(size=(240, 60)) as pilot:
        for _ in range(3):
            await pilot.pause()
        table = app.screen.query_one(RunsTable)
        assert table.row_count == len(snapshot.rows)
        names = [table.get_cell(row.key, "run") for row in snapshot.rows]
        for cell in names:
            assert not FORBIDDEN.search(cell.plain) and "\x1b" not in cell.plain, repr(cell.plain)
            assert not cell.spans or all("link" not in str(span.style) for span in cell.spans)
        assert any(cell.plain.startswith("[bold]boom[/]") for cell in names)  # markup as typed
        # What the terminal receives: every cell rendered, only Rich's own SGR codes.
        console = Console(file=io.StringIO(), width=240, force_terminal=True, color_system="truecolor")
        for cell in names:
            console.print(cell)
        out = console.file.getvalue()  # type: ignore[attr-defined]
        assert "\x1b]" not in out and not FORBIDDEN.search(SGR.sub("", out).replace("\n", ""))
        screen = app.export_screenshot()
        assert "[bold]boom[/]" in html.unescape(screen) or "[bold]boom[/]" in screen
        # The detail screen of a run whose name and path carry escapes.
        evil_row = next(r for r in snapshot.rows if "[bold]file" in r.name)
        table.move_cursor(row=table.get_row_index(evil_row.key))
        await pilot.press("enter")
        for _ in range(3):
            await pilot.pause()
        detail = app.export_screenshot()
        assert "[bold]file" in detail
        await pilot.press("escape")
        # A run whose GPU and precision (config values) carry escapes and markup.
        for key in ("csi", "markup", "osc-link"):
            evil_row = next(r for r in snapshot.rows if r.path.endswith(f"log_{key}.json"))
            table.move_cursor(row=table.get_row_index(evil_row.key))
            await pilot.press("enter")
            for _ in range(3):
                await pilot.pause()
            detail += app.export_screenshot()
            await pilot.press("escape")
        shown_text = html.unescape(detail).replace("\xa0", " ")
        assert "× clearred" in shown_text and "[link=http://x]click[/link]" in shown_text  # the GPU, as typed
        for bad in ("\x1b", "\x07", "&#27;", "&#x1b;", "&#7;", "8;;http://evil"):
            assert bad not in detail, bad


async def test_app_notifications_are_literal(tmp_path: Path) -> None:
    """A failure reason from the log becomes an alert: as typed, without escapes."""
    from trainwatch.tui.app import TrainwatchApp

    path = tmp_path / "train.log"
    lines = [f"iter {i}: loss 2.0, time 100.00ms, mfu 10.00%" for i in range(20)]
    path.write_text("\n".join(lines) + "\n")
    source = LogSource(path)
    source.refresh()
    first = build([source], Names(), NOW)
    with open(path, "a") as handle:
        handle.write("Traceback (most recent call last):\n  File x\nRuntimeError: [bold]x[/] \x1b]0;pwned\x07\x1b[2J\n")
    source.refresh()
    second = build([source], Names(), NOW)
    assert second.rows[0].stats.status == "failed"
    app = TrainwatchApp(lambda publish: FakeSource(publish, first), clock=lambda: NOW)
    async with app.run_test(size=(160, 40)) as pilot:
        for _ in range(3):
            await pilot.pause()
        app.post_message(__import__("trainwatch.tui.app", fromlist=["SnapshotReady"]).SnapshotReady(second))
        for _ in range(3):
            await pilot.pause()
        messages = [str(n.message) for n in app._notifications]
    failed = [m for m in messages if "RuntimeError" in m]
    assert failed, messages
    for message in failed:
        assert "\x1b" not in message and "\x07" not in message
        assert "[bold]x[/]" in message
