"""``python -m benchmarks [--smoke] [--write] [--only NAME ...]``."""

from __future__ import annotations

import argparse
import compileall
import importlib
import json
import os
import sys
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import trainwatch
from benchmarks import generate, report
from benchmarks.core import FULL, SMOKE, Context, Row, machine

BENCHES = ("load", "refresh", "memory", "startup", "live", "box")
ANALYSIS = Path(__file__).resolve().parent / "ANALYSIS.md"
#: The last written run's figures (git-ignored with the data), for ``--render``.
SAVED = generate.DATA / "results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI); RESULTS.md is left alone")
    parser.add_argument("--write", action="store_true", help="write RESULTS.md even with --smoke or --only")
    parser.add_argument("--only", nargs="+", choices=BENCHES, help="run only these benchmarks")
    parser.add_argument("--data", type=Path, help="where generated inputs go (default: benchmarks/data)")
    parser.add_argument("--render", action="store_true", help="rewrite RESULTS.md from the last full run's figures")
    args = parser.parse_args(argv)
    if args.render:
        return _render_saved()
    sizes = SMOKE if args.smoke else FULL
    data = args.data or (generate.DATA / "smoke" if args.smoke else generate.DATA)
    data.mkdir(parents=True, exist_ok=True)
    ctx = Context(sizes, data)
    # A pip install compiles bytecode; an editable one under
    # PYTHONDONTWRITEBYTECODE (set on some machines) would recompile every
    # module at each launch (~0.13 s), which no installed trainwatch pays.
    compileall.compile_dir(Path(trainwatch.__file__).parent, quiet=1)
    # The apps in tmux and the probes are subprocesses: they measure the
    # trainwatch this process imports (a worktree's), not the one installed.
    root = str(Path(trainwatch.__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    described = machine()
    described["bytecode"] = "trainwatch precompiled (compileall), as an installed package is"
    print(f"trainwatch benchmarks, {sizes.name} sizes, inputs in {data}")
    for key, value in described.items():
        print(f"  {key}: {value}")
    started, clock = datetime.now(), time.perf_counter()
    ran: list[str] = []  # the benchmark module of each row
    for name in args.only or BENCHES:
        importlib.import_module(f"benchmarks.bench_{name}").run(ctx)
        ran += [name] * (len(ctx.rows) - len(ran))
    seconds = time.perf_counter() - clock
    described["load average at end (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    for note in ctx.notes:
        print(f"note: {note}")
    print(f"done in {seconds:.0f} s")
    if args.write or not (args.smoke or args.only):
        rows = [{**asdict(row), "module": module} for row, module in zip(ctx.rows, ran, strict=True)]
        saved = json.loads(SAVED.read_text(encoding="utf-8")) if args.only and SAVED.exists() else None
        if saved is not None and saved["sizes"] == sizes.name:
            # A partial rerun replaces its benchmarks' rows and keeps the others'.
            for row in saved["rows"]:
                row.setdefault("module", "live" if row["bench"] in ("idle", "busy") else row["bench"])
            keep = [row for row in saved["rows"] if row["module"] not in args.only]
            rows = sorted(keep + rows, key=lambda row: BENCHES.index(row["module"]))
            load = described["load average at start (1/5/15 min)"]
            rerun = f"{', '.join(args.only)} at {started:%H:%M} (load average {load})"
            previous = saved["machine"].get("rerun")
            described = {**saved["machine"], "rerun": f"{previous}; {rerun}" if previous else rerun}
            ctx.notes = [*saved["notes"], *ctx.notes]
            started, seconds = datetime.fromisoformat(saved["started"]), saved["seconds"]
        payload = {
            "sizes": sizes.name,
            "machine": described,
            "started": started.isoformat(),
            "seconds": seconds,
            "rows": rows,
            "notes": ctx.notes,
        }
        SAVED.write_text(json.dumps(payload, indent=1), encoding="utf-8")
        _render_saved()
    return 0


def _render_saved() -> int:
    """RESULTS.md from the figures of the last written run and the current ANALYSIS.md."""
    saved = json.loads(SAVED.read_text(encoding="utf-8"))
    ctx = Context(FULL if saved["sizes"] == "full" else SMOKE, generate.DATA)
    ctx.rows = [Row(**{k: v for k, v in row.items() if k != "module"}) for row in saved["rows"]]
    ctx.notes = saved["notes"]
    analysis = ANALYSIS.read_text(encoding="utf-8") if ANALYSIS.exists() else ""
    text = report.render(ctx, saved["machine"], datetime.fromisoformat(saved["started"]), saved["seconds"], analysis)
    report.RESULTS.write_text(text, encoding="utf-8")
    print(f"wrote {report.RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
