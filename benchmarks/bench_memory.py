"""Memory: 8 runs of 1M logged iterations each, loaded as ``trainwatch snapshot`` loads them.

Measured in a fresh interpreter: peak RSS (``VmHWM``) after every run is
loaded and the snapshot built, and the RSS left once the load is over. The
baseline is the same interpreter with trainwatch imported and nothing loaded.
Target: at most 150 MiB peak for 8 × 1M. The seed JSON format is measured
too (one 100k-entry, ~100 MB document): a JSON document is parsed whole, so
its peak follows the file's size, not the run's length.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks import generate
from benchmarks.core import Context, Row

MIB = 1024 * 1024
TARGET_MIB = 150.0

_PROBE = r"""
import json, sys
from datetime import datetime
from pathlib import Path

def status():
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields

from trainwatch.core.names import Names
from trainwatch.ingest.publish import build
from trainwatch.ingest.source import LogSource
from trainwatch.ingest.discover import discover

before = status()
files, _ = discover([Path(p) for p in sys.argv[1:]])
sources = []
for path in files:
    source = LogSource(path)
    source.refresh()
    sources.append(source)
snapshot = build(sources, Names(), datetime.now())
after = status()
print(json.dumps({"before": before, "after": after, "runs": len(snapshot.rows),
                  "iters": sum(r.stats.logged_iters for r in snapshot.rows)}))
"""


def probe(paths: list[Path]) -> dict[str, object]:
    """Load ``paths`` in a fresh interpreter; its memory before and after."""
    out = subprocess.run([sys.executable, "-c", _PROBE, *map(str, paths)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _runs(ctx: Context) -> Path:
    sizes = ctx.sizes
    folder = ctx.data / f"memory-v{generate.VERSION}-{sizes.memory_runs}x{sizes.memory_iters}"
    if not folder.exists():
        tmp = folder.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        first = tmp / "run0" / "train.log"
        generate.write_nanogpt_iters(first, sizes.memory_iters)
        for k in range(1, sizes.memory_runs):
            (tmp / f"run{k}").mkdir(parents=True)
            shutil.copyfile(first, tmp / f"run{k}" / "train.log")
        tmp.rename(folder)
    return folder


def run(ctx: Context) -> None:
    sizes = ctx.sizes
    folder = _runs(ctx)
    result = probe([folder])
    before, after = result["before"], result["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    base = before["VmHWM"] / MIB
    per_iter = (after["VmRSS"] - before["VmRSS"]) / max(1, int(result["iters"]))  # type: ignore[call-overload]
    peak, left = after["VmHWM"] / MIB, after["VmRSS"] / MIB
    full = sizes.memory_runs * sizes.memory_iters == 8_000_000  # the target is for 8 × 1M only
    ctx.add(
        Row(
            "memory",
            f"{sizes.memory_runs} runs × {sizes.memory_iters:,} iters, nanoGPT stdout (peak RSS)",
            peak,
            "MiB",
            "python + import trainwatch",
            base,
            f"≤ {TARGET_MIB:.0f} MiB" if full else "",
            peak <= TARGET_MIB if full else None,
            f"RSS after loading {left:.1f} MiB; {per_iter:.1f} B per logged iteration",
        )
    )
    doc = generate.seed_json_file(sizes.json_entries, ctx.data)
    result = probe([doc])
    before, after = result["before"], result["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    ctx.add(
        Row(
            "memory",
            f"1 seed JSON, {doc.stat().st_size / 1e6:,.0f} MB, {sizes.json_entries:,} iters (peak RSS)",
            after["VmHWM"] / MIB,
            "MiB",
            "python + import trainwatch",
            before["VmHWM"] / MIB,
            note=f"RSS after loading {after['VmRSS'] / MIB:.1f} MiB (the parsed document is freed)",
        )
    )
