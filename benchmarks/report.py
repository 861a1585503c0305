"""RESULTS.md: every figure with its baseline, the machine, and what bounds a missed target."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from benchmarks.core import Context, Row, fmt

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _cell(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{fmt(value)} {unit}".strip()


def _row(row: Row) -> str:
    met = {True: "met", False: "**not met**", None: ""}[row.met]
    target = f"{row.target}: {met}" if row.target else ""
    base = f"{row.baseline}: {_cell(row.base_value, row.unit)}" if row.baseline else ""
    cells = [row.bench, row.what, _cell(row.value, row.unit), base, row.ratio_text, target, row.note]
    return "| " + " | ".join(c.replace("|", "\\\\|") for c in cells) + " |"


def render(ctx: Context, machine: dict[str, str], started: datetime, seconds: float, analysis: str) -> str:
    lines = [
        "# trainwatch benchmarks",
        "",
        f"`python -m benchmarks` ({ctx.sizes.name} sizes), {started:%Y-%m-%d %H:%M}, {seconds:.0f} s in all.",
        "Each figure is measured beside its baseline in the same process or side by side;",
        "times are the best of the repeats unless the row says otherwise. Regenerate with",
        "`python -m benchmarks` (this file) or `python -m benchmarks --smoke` (CI: prints only).",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in machine.items()],
        "",
        "## Figures",
        "",
        "| bench | what | figure | baseline | ratio | target | notes |",
        "|---|---|---|---|---|---|---|",
        *[_row(row) for row in ctx.rows],
        "",
    ]
    if ctx.notes:
        lines += ["## Run notes", "", *[f"- {note}" for note in ctx.notes], ""]
    if analysis:
        lines += [analysis.strip(), ""]
    return "\n".join(lines)
