"""Cold load: ``trainwatch snapshot``'s code path on a 100 MB log, against the floor.

The figure is ``LogSource.refresh()`` + ``snapshot.build`` in process, as the
CLI runs them. The floor reads the same bytes with the least code that gets
the same numbers out: one compiled regex per line for the text log,
``orjson.loads`` for the JSON log. Target: at most twice the floor. For a
TensorBoard event file the baseline is the bare framing loop (one
``struct.unpack_from`` of each length header, no CRC, no decoding): what any
reader in Python pays before it looks at a record; no target.
"""

from __future__ import annotations

import gc
import re
import struct
from datetime import datetime
from pathlib import Path

import orjson

from benchmarks import generate
from benchmarks.core import Context, Row, best_of
from trainwatch.core.names import Names
from trainwatch.ingest.publish import build
from trainwatch.ingest.source import LogSource

_ITER = re.compile(rb"iter (\d+): loss ([\d.]+), time ([\d.]+)ms, mfu (-?[\d.]+)%")
_EVAL = re.compile(rb"step (\d+): train loss ([\d.]+), val loss ([\d.]+)")


def regex_floor(path: Path) -> int:
    """The same numbers as the parser takes from each line, by one regex per line."""
    found = 0
    for line in path.read_bytes().split(b"\n"):
        if (m := _ITER.match(line)) is not None:
            int(m[1]), float(m[2]), float(m[3]), float(m[4])
            found += 1
        elif (m := _EVAL.match(line)) is not None:
            int(m[1]), float(m[2]), float(m[3])
    return found


def orjson_floor(path: Path) -> int:
    return len(orjson.loads(path.read_bytes())["training_iterations"])


def orjson_floor_nogc(path: Path) -> int:
    gc.disable()
    try:
        return orjson_floor(path)
    finally:
        gc.enable()


def framing_floor(path: Path) -> int:
    """Walk the TFRecord frames by their length headers alone; the number of frames."""
    data = path.read_bytes()
    length = struct.Struct("<Q").unpack_from
    pos = frames = 0
    end = len(data)
    while pos + 12 <= end:
        pos += length(data, pos)[0] + 16
        frames += 1
    return frames


def snapshot_load(path: Path) -> int:
    """What ``trainwatch snapshot PATH`` does in process: refresh the source, build the snapshot."""
    source = LogSource(path)
    source.refresh()
    snapshot = build([source], Names(), datetime.now())
    assert snapshot.rows, f"{path}: {snapshot.unrecognised}"
    return snapshot.rows[0].stats.logged_iters


def run(ctx: Context) -> None:
    sizes = ctx.sizes
    text = generate.nanogpt_file(sizes.text_bytes, ctx.data)
    doc = generate.seed_json_file(sizes.json_entries, ctx.data)
    warm = ctx.data / "warm-up.log"
    generate.write_nanogpt_iters(warm, 10)
    snapshot_load(warm)  # first-call imports (metrics, …) are not part of a load
    mb = text.stat().st_size / 1e6
    ours, floor = best_of(sizes.repeats, lambda: snapshot_load(text), lambda: regex_floor(text))
    lines = regex_floor(text)
    ctx.add(
        Row(
            "load",
            f"nanoGPT stdout, {mb:,.0f} MB, {lines:,} iter lines",
            ours,
            "s",
            "per-line regex",
            floor,
            "≤ 2× floor",
            ours <= 2 * floor,
            f"{ours / lines * 1e6:.1f} µs per line, floor {floor / lines * 1e6:.1f} µs",
        )
    )
    mb = doc.stat().st_size / 1e6
    ours, floor, floor_nogc = best_of(
        sizes.repeats, lambda: snapshot_load(doc), lambda: orjson_floor(doc), lambda: orjson_floor_nogc(doc)
    )
    ctx.add(
        Row(
            "load",
            f"seed JSON, {mb:,.0f} MB, {sizes.json_entries:,} iterations",
            ours,
            "s",
            "orjson.loads",
            floor,
            "≤ 2× floor",
            ours <= 2 * floor,
            f"orjson.loads with the GC off: {floor_nogc:.3f} s, ×{ours / floor_nogc:.2f}",
        )
    )
    events = generate.tfevents_file(sizes.text_bytes, ctx.data)
    snapshot_load(generate.tfevents_file(20_000, ctx.data))  # first-call imports: protobuf, google_crc32c
    mb = events.stat().st_size / 1e6
    ours, floor = best_of(sizes.repeats, lambda: snapshot_load(events), lambda: framing_floor(events))
    records = framing_floor(events)
    steps = snapshot_load(events)
    ctx.add(
        Row(
            "load",
            f"TensorBoard events, {mb:,.0f} MB, {records:,} records",
            ours,
            "s",
            "bare framing loop",
            floor,
            "",
            None,
            f"{ours / records * 1e6:.2f} µs per record ({steps:,} steps of 17 tags), "
            f"floor {floor / records * 1e6:.2f} µs",
        )
    )
