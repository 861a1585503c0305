"""Snapshots as files and terminal output: table, md, csv, json, html.

json is the stable contract (``trainwatch.outputs.contract``). md, csv and html go
through pandas, imported only when asked for (it costs ~0.3 s). Exports are
written atomically (``outputs.writing``: temp file + rename in the destination
folder; never over a device, a FIFO or a link), and text from logs is escaped
for the target: HTML-escaped, spreadsheet formulas
defused in CSV, markdown's special characters escaped.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
from rich.cells import cell_len

from trainwatch.core import fmt
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.core.shorten import shorten_all
from trainwatch.outputs.contract import run_record, snapshot_record
from trainwatch.outputs.writing import write_atomic

if TYPE_CHECKING:
    import pandas

FORMATS = ("table", "md", "csv", "json", "html")
FILE_FORMATS = ("md", "csv", "json", "html")
# Escape sequences first: matching a lone ESC first would leave "[2J" behind.
# OSC sequences (terminal titles, hyperlinks) whole, so their payload goes too.
# Bidirectional controls (U+202E turns "gpt2.log" into "gol.2tpg" and the
# columns after it) go with the C0/C1 controls.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def render(snapshot: Snapshot, kind: str) -> str:
    """The snapshot as text of the given format (not ``table``)."""
    if kind == "json":
        record = snapshot_record(snapshot)
        try:
            return orjson.dumps(record, option=orjson.OPT_INDENT_2).decode() + "\n"
        except orjson.JSONEncodeError:  # an integer beyond 64 bits, a file name that is not UTF-8
            return json.dumps(_plain(record), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if kind == "csv":
        frame = _frame([_defuse_csv(run_record(row)) for row in snapshot.rows])
        return str(frame.to_csv(index=False))
    if kind == "md":
        return _human_frame(snapshot, _md_text).to_markdown(index=False) + _footnotes(snapshot, "md")
    if kind == "html":
        table = _human_frame(snapshot, safe_text).to_html(index=False, escape=True, border=0)
        return _HTML.format(table=table, notes=_footnotes(snapshot, "html"))
    raise ValueError(f"unknown format {kind!r}")


#: The glyphs trainwatch draws, each as one ASCII character (the width of a
#: table cell stays), for a terminal whose encoding has none of them (an
#: ISO-8859-1 locale, ``PYTHONIOENCODING=ascii``) or ``--ascii``.
ASCII_GLYPHS = str.maketrans(
    {
        "●": "*",
        "◐": "o",
        "○": "-",
        "✓": "+",
        "✗": "x",
        "⚑": "!",
        "—": "-",
        "–": "-",
        "·": "-",
        "×": "x",
        "÷": "/",
        "…": "~",
        "━": "-",
        "\ufffd": "?",
        **dict.fromkeys("▁▂▃▄", "_"),
        **dict.fromkeys("▅▆▇█", "#"),
    }
)
#: Drawn in every format: when an encoding cannot carry these, ``legacy_text`` is needed.
_GLYPHS = "●◐✓✗⚑—…"


def encodes_glyphs(encoding: str | None) -> bool:
    """Can text in ``encoding`` show trainwatch's glyphs (``✓ ● ⚑ —``)?"""
    try:
        _GLYPHS.encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def legacy_text(text: str, kind: str, encoding: str) -> str:
    """``text`` of format ``kind`` as ``encoding`` can carry it, meaning kept:
    HTML as character references, JSON as ``\\u`` escapes (both exact),
    the rest with ASCII glyphs and ``?`` for any other character it lacks."""
    if kind == "html":
        return text.encode(encoding, "xmlcharrefreplace").decode(encoding)
    if kind == "json":
        return json.dumps(json.loads(text), indent=2, ensure_ascii=True) + "\n"
    return text.translate(ASCII_GLYPHS).encode(encoding, "replace").decode(encoding)


def export(snapshot: Snapshot, folder: Path, kinds: tuple[str, ...] = ("md", "csv", "json")) -> list[Path]:
    """Write the snapshot into ``folder`` in each format; the paths written."""
    stamp = snapshot.generated_at.strftime("%Y%m%d-%H%M%S")
    written = []
    for kind in kinds:
        target = folder / f"trainwatch-{stamp}.{kind}"
        write_atomic(target, render(snapshot, kind))
        written.append(target)
    return written


#: Files that hold no run, listed under the table before the rest are counted.
UNRECOGNISED_SHOWN = 10


def rich_table(snapshot: Snapshot, width: int = 100) -> Any:
    """A Rich renderable of the snapshot, fitted to ``width`` columns.

    Columns are dropped by priority (Run, Status, Iter, Loss and ETA last)
    rather than cut mid-number; names get the room left, up to the longest,
    and are cut together so that they stay apart (``core.shorten``). Files
    that hold no run are listed below it, the first ``UNRECOGNISED_SHOWN``
    of them: a folder of 50,000 is not 50,000 lines.
    """
    from rich.table import Table
    from rich.text import Text

    now = snapshot.generated_at
    cells = [_table_cells(row, now) for row in snapshot.rows]
    keep, name_width = _fit_columns(cells, width)
    names = shorten_all([row[0] for row in cells], name_width)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for index in keep:
        title, justify, _ = _TABLE_COLUMNS[index]
        table.add_column(title, justify=justify, no_wrap=True, width=name_width if index == 0 else None)
    for name, row_cells in zip(names, cells, strict=True):
        table.add_row(*(Text(name if i == 0 else row_cells[i]) for i in keep))
    if not snapshot.unrecognised and not any(r.stats.warnings for r in snapshot.rows):
        return table
    from rich.console import Group

    # Text, not markup: shown as typed (escape() would show its backslashes);
    # safe_text: a file name can carry escape sequences as well as a log line.
    notes = [Text(safe_text(f"⚑ {row.name}: {w}"), style="yellow") for row in snapshot.rows for w in row.stats.warnings]
    shown = snapshot.unrecognised[:UNRECOGNISED_SHOWN]
    notes += [Text(safe_text(f"unrecognised: {p} ({r})"), style="dim") for p, r in shown]
    if len(snapshot.unrecognised) > len(shown):
        notes.append(
            Text(f"… and {len(snapshot.unrecognised) - len(shown):,} more files that hold no run", style="dim")
        )
    return Group(table, Text(""), *notes)


STATUS_MARK = {"running": "●", "stalled": "◐", "finished": "✓", "diverged": "✗", "failed": "✗", "exited": "○"}
# (title, justify, priority): lower priority numbers survive narrow terminals.
_TABLE_COLUMNS: tuple[tuple[str, Literal["left", "right"], int], ...] = (
    ("Run", "left", 0),
    ("Status", "left", 0),
    ("Iter", "right", 0),
    ("Loss", "right", 1),
    ("s/iter", "right", 3),
    ("Tok/h", "right", 2),
    ("MFU", "right", 2),
    ("Train time", "right", 3),  # the whole run's training time: the mission's figure
    ("ETA", "right", 1),
    ("Finish", "right", 4),  # now + ETA: the first to go
)
#: Names get at least this many cells before a column is dropped for them.
_NAME_MIN = 16


def _table_cells(row: RunRow, now: Any) -> list[str]:
    s = row.stats
    flag = " ⚑" if s.warnings else ""
    return [
        safe_text(row.name).replace("\n", " "),
        STATUS_MARK.get(s.status, "?") + " " + s.status,
        s.iter_of_target,
        fmt.number(s.loss, 3),
        fmt.number(s.mean_iter_s, 2),
        fmt.si(s.tokens_per_hour),
        fmt.pct(s.mfu_mean_pct, 2) + flag,
        fmt.train_time(s.train_time_s, s.train_time_estimated),
        fmt.duration(s.eta_s) if s.status != "finished" else "done",
        fmt.clock(s.finish_at, now),
    ]


def _fit_columns(cells: list[list[str]], width: int) -> tuple[list[int], int]:
    """Columns that fit, least important dropped first, and the name width
    (the room the others leave, up to the longest name)."""
    titles = [title for title, _, _ in _TABLE_COLUMNS]
    widths = [max([cell_len(title), *(cell_len(r[i]) for r in cells)]) for i, title in enumerate(titles)]
    keep = list(range(len(_TABLE_COLUMNS)))
    longest = widths[0]

    def others() -> int:  # the kept columns but Run, with the two spaces between columns
        return sum(widths[i] + 2 for i in keep if i != 0)

    for priority in (4, 3, 2, 1):
        if others() + min(longest, _NAME_MIN) <= width:
            break
        keep = [i for i in keep if _TABLE_COLUMNS[i][2] < priority]
    return keep, max(min(longest, 4), min(longest, width - others()))


def safe_text(text: str) -> str:
    """Log text as a person may see it: terminal control sequences and
    bidirectional overrides removed, a file name's undecodable bytes as U+FFFD
    (``fmt.valid_unicode``: drawn as one cell, as measured)."""
    return _CONTROL.sub("", fmt.valid_unicode(text))


def _human_frame(snapshot: Snapshot, text: Callable[[str], str]) -> pandas.DataFrame:
    """The seed table's columns, then ours, formatted for people; log text through ``text``."""
    now = snapshot.generated_at
    rows = [_human_row(row, now, text) for row in snapshot.rows]
    return _frame(rows)


def _human_row(row: RunRow, now: Any, text: Callable[[str], str]) -> dict[str, str]:
    s = row.stats
    flag = " ⚑" if s.warnings else ""
    return {
        "Model": text(row.name),
        "Batch Size (per GPU)": fmt.count(s.batch_size),
        "Gradient Accumulation": fmt.count(s.grad_accum),
        "GPUs": fmt.count(s.world_size),
        "Effective Batch Size": fmt.count(s.effective_batch),
        "Tokens per Iteration": fmt.count(s.tokens_per_iter),
        # The seed's column (logged iterations only), then the whole run's.
        "Training Time": f"{fmt.duration(s.train_time_logged_s)} ({s.logged_iters - s.eval_iters} iters)",
        "Train time (whole run)": fmt.train_time(s.train_time_s, s.train_time_estimated),
        "Status": s.status,
        "Iter": s.iter_of_target,
        "Loss": fmt.number(s.loss, 4),
        "s/iter": fmt.number(s.mean_iter_s, 2),
        "Tokens/hour": fmt.si(s.tokens_per_hour),
        "MFU": fmt.pct(s.mfu_mean_pct, 2) + flag,
        "MFU (dense peak)": fmt.pct(s.mfu_dense_pct, 1),
        "Wall clock": fmt.duration(s.wall_elapsed_s),
        "ETA": fmt.duration(s.eta_s) if s.status != "finished" else "done",
        "Finish": fmt.clock(s.finish_at, now),
    }


def _footnotes(snapshot: Snapshot, kind: str) -> str:
    notes = [f"{row.name}: {w}" for row in snapshot.rows for w in row.stats.warnings]
    if not notes:
        return "\n" if kind == "md" else ""
    if kind == "html":
        import html

        items = "".join(f"<li>⚑ {html.escape(safe_text(n))}</li>" for n in notes)
        return f"<ul class='notes'>{items}</ul>"
    return "\n\n" + "\n".join(f"- ⚑ {_md_text(n)}" for n in notes) + "\n"


_MD_SPECIAL = re.compile(r"([\\|<>*\[\]`])")


def _md_text(text: str) -> str:
    """Log text as literal markdown: a pipe would split its table cell, and
    ``<tag>``, ``*``, ``[link]`` or a backtick would be markup (raw HTML
    included). Backslash escapes keep it readable; ``_`` stays (GitHub does
    not make emphasis inside a word, and run names are full of them)."""
    return _MD_SPECIAL.sub(r"\\\1", safe_text(text))


def _defuse_csv(record: dict[str, Any]) -> dict[str, Any]:
    """Spreadsheets run cells starting with = + - @ as formulas: quote them."""
    out = {}
    for key, value in _flat(record).items():
        if isinstance(value, list):  # warnings, GPUs' figures; hangs as "iter=900 seconds=10828.2"
            value = " | ".join(
                " ".join(f"{k}={v}" for k, v in item.items()) if isinstance(item, dict) else str(item) for item in value
            )
        if isinstance(value, str):
            value = safe_text(value)
            if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
                value = "'" + value
        out[key] = value
    return out


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    """One CSV column per figure: ``process`` as ``process_pid``, ``process_alive``…;
    ``gpus`` as one cell per GPU figure, the GPUs' values joined with `` | ``."""
    out = dict(record)
    process = out.pop("process", None)
    for key in ("pid", "alive", "cmdline", "started_at", "cpu_pct", "rss_mib"):
        out[f"process_{key}"] = process.get(key) if process else None
    gpus = out.pop("gpus", None) or []
    for key in ("index", "name", "util_pct", "mem_used_mib", "mem_total_mib", "power_w"):
        out[f"gpu_{key}"] = [g[key] for g in gpus] if gpus else None
    return out


def _plain(value: Any) -> Any:
    """``value`` with NaN and inf as ``None`` (as orjson writes them), and the
    undecodable bytes of a file name (surrogates) as U+FFFD: valid UTF-8 JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _frame(rows: list[dict[str, Any]]) -> pandas.DataFrame:
    import pandas

    return pandas.DataFrame(rows)


_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>trainwatch snapshot</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}}
td:first-child,th:first-child{{text-align:left}}</style></head>
<body><h1>trainwatch snapshot</h1>
{table}
{notes}
</body></html>
"""


__all__ = ["FILE_FORMATS", "FORMATS", "encodes_glyphs", "export", "legacy_text", "render", "rich_table", "write_atomic"]
