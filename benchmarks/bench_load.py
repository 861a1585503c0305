"""Cold load: ``trainwatch snapshot``'s code path on a 100 MB log of each format, against its floor.

The figure is ``LogSource.refresh()`` + ``snapshot.build`` in process, as the
CLI runs them, in CPU seconds (the machine is shared: CPU time moves far
less than wall time). The floor reads the same bytes with the least code
that gets the same numbers out: one compiled regex per line for a text log
(``benchmarks.formats`` has one per format), ``orjson.loads`` for the JSON
log and per line for JSON lines. For a TensorBoard event file it is the bare
framing loop (one ``struct.unpack_from`` of each length header, no CRC, no
decoding): what any reader in Python pays before it looks at a record.
Target: at most 1.5 × the floor. Also the realistic folders, whole: the
corpus and a generated 100-run folder mixing formats, against reading and
splitting their bytes into lines.
"""

from __future__ import annotations

import gc
import re
import struct
import time
from datetime import datetime
from functools import partial
from pathlib import Path

import orjson

from benchmarks import apps, formats, generate
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


def framed(path: Path) -> int:
    """The file's records framed and CRC-checked (``tfrecord.RecordReader``), in
    ``LogSource``'s chunks: the reader's share of a cold load. The records."""
    from trainwatch.ingest import source
    from trainwatch.parsers.tfrecord import RecordReader

    data, reader, count = path.read_bytes(), RecordReader(), 0
    for pos in range(0, len(data), source.CHUNK):
        count += len(reader.feed(data[pos : pos + source.CHUNK]))
    return count


def decoded(path: Path) -> int:
    """``framed``, and each record decoded to its summary values (``EventDecoder``). The values."""
    from trainwatch.ingest import source
    from trainwatch.parsers.tfevents_proto import EventDecoder
    from trainwatch.parsers.tfrecord import RecordReader

    data, reader, decoder, count = path.read_bytes(), RecordReader(), EventDecoder(), 0
    for pos in range(0, len(data), source.CHUNK):
        count += len(decoder.decode(reader.feed(data[pos : pos + source.CHUNK])))
    return count


def snapshot_load(path: Path) -> int:
    """What ``trainwatch snapshot PATH`` does in process: refresh the source, build the snapshot."""
    source = LogSource(path)
    source.refresh()
    snapshot = build([source], Names(), datetime.now())
    assert snapshot.rows, f"{path}: {snapshot.unrecognised}"
    return snapshot.rows[0].stats.logged_iters


def parse_only(path: Path) -> int:
    """The format's parser alone over the log, in the chunks ``LogSource``
    reads (``feed_text`` of whole lines): what of the cold load is parsing,
    the rest being the aggregator's. The records it gives."""
    from trainwatch import parsers
    from trainwatch.ingest import source

    data = path.read_bytes()
    spec = parsers.detect_head(data[: parsers.SNIFF_BYTES_MORE], path.name)
    assert spec is not None and spec.new_line_parser is not None, path
    parser = spec.new_line_parser()
    text = data.decode()
    records = pos = 0
    while pos < len(text):
        end = text.find("\n", pos + source.CHUNK)
        end = len(text) if end < 0 else end + 1
        records += len(parser.feed_text(text[pos:end]))  # type: ignore[attr-defined]
        pos = end
    return records


#: Cold load at most this many times its floor (issue 19).
TARGET = 1.5


def folder_load(folder: Path) -> int:
    """``trainwatch snapshot FOLDER`` in process: every log read, the snapshot built; its runs."""
    from trainwatch.ingest.discover import discover

    sources = []
    for path in discover([folder])[0]:
        source = LogSource(path)
        source.refresh()
        source.flush()
        sources.append(source)
    return len(build(sources, Names(), datetime.now()).rows)


def folder_floor(folder: Path) -> int:
    """Every file of the folder read, decoded and cut into lines: the least any reader does."""
    from trainwatch.ingest.discover import discover

    lines = 0
    for path in discover([folder])[0]:
        lines += len(path.read_bytes().decode("utf-8", "replace").split("\n"))
    return lines


def _format_rows(ctx: Context) -> None:
    """Each line format with a bulk path, 100 MB of it, against its per-line floor."""
    for name, fmt in formats.FORMATS.items():
        path = formats.cached(name, ctx.sizes.text_bytes, ctx.data)
        snapshot_load(path)
        ours, floor, parse = best_of(
            ctx.sizes.repeats,
            partial(snapshot_load, path),
            partial(fmt.floor, path),
            partial(parse_only, path),
            clock=time.process_time,
        )
        steps = fmt.floor(path)
        mb = path.stat().st_size / 1e6
        ctx.add(
            Row(
                "load",
                f"{name}, {mb:,.0f} MB, {steps:,} lines (CPU)",
                ours,
                "s",
                "per-line floor",
                floor,
                f"≤ {TARGET:g}× floor",
                ours <= TARGET * floor,
                f"{ours / steps * 1e6:.2f} µs a line: parse {parse / steps * 1e6:.2f} µs, aggregate and "
                f"snapshot {(ours - parse) / steps * 1e6:.2f} µs; floor {floor / steps * 1e6:.2f} µs",
            )
        )


def _folder_rows(ctx: Context) -> None:
    corpus = apps.CORPUS.parent
    mixed = formats.mixed_folder(ctx.sizes.mixed_runs, ctx.data)
    for what, folder in (("the corpus", corpus), (f"{ctx.sizes.mixed_runs} generated runs, mixed formats", mixed)):
        if not folder.is_dir():
            ctx.notes.append(f"load: {folder} is missing; its row was skipped")
            continue
        folder_load(folder)  # (first-call imports)
        ours, floor = best_of(
            ctx.sizes.repeats, partial(folder_load, folder), partial(folder_floor, folder), clock=time.process_time
        )
        runs = folder_load(folder)
        mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
        ctx.add(
            Row(
                "load",
                f"{what}: {runs} runs, {mb:,.0f} MB (CPU)",
                ours,
                "s",
                "read and split into lines",
                floor,
                note="snapshot's code path: every log read and its run derived",
            )
        )


def run(ctx: Context) -> None:
    sizes = ctx.sizes
    text = generate.nanogpt_file(sizes.text_bytes, ctx.data)
    doc = generate.seed_json_file(sizes.json_entries, ctx.data)
    warm = ctx.data / "warm-up.log"
    generate.write_nanogpt_iters(warm, 10)
    snapshot_load(warm)  # first-call imports (metrics, …) are not part of a load
    mb = text.stat().st_size / 1e6
    ours, floor = best_of(
        sizes.repeats, lambda: snapshot_load(text), lambda: regex_floor(text), clock=time.process_time
    )
    lines = regex_floor(text)
    ctx.add(
        Row(
            "load",
            f"nanogpt_stdout, {mb:,.0f} MB, {lines:,} iter lines (CPU)",
            ours,
            "s",
            "per-line floor",
            floor,
            f"≤ {TARGET:g}× floor",
            ours <= TARGET * floor,
            f"{ours / lines * 1e6:.1f} µs per line, floor {floor / lines * 1e6:.1f} µs",
        )
    )
    mb = doc.stat().st_size / 1e6
    ours, floor, floor_nogc = best_of(
        sizes.repeats,
        lambda: snapshot_load(doc),
        lambda: orjson_floor(doc),
        lambda: orjson_floor_nogc(doc),
        clock=time.process_time,
    )
    ctx.add(
        Row(
            "load",
            f"llm_tii_json (seed JSON), {mb:,.0f} MB, {sizes.json_entries:,} iterations (CPU)",
            ours,
            "s",
            "orjson.loads",
            floor,
            f"≤ {TARGET:g}× floor",
            ours <= TARGET * floor,
            f"orjson.loads with the GC off: {floor_nogc:.3f} s, ×{ours / floor_nogc:.2f}",
        )
    )
    events = generate.tfevents_file(sizes.text_bytes, ctx.data)
    snapshot_load(generate.tfevents_file(20_000, ctx.data))  # first-call imports: protobuf, google_crc32c
    mb = events.stat().st_size / 1e6
    ours, floor, crc, decode = best_of(
        sizes.repeats,
        lambda: snapshot_load(events),
        lambda: framing_floor(events),
        lambda: framed(events),
        lambda: decoded(events),
        clock=time.process_time,
    )
    records = framing_floor(events)
    steps = snapshot_load(events)
    ctx.add(
        Row(
            "load",
            f"tfevents, {mb:,.0f} MB, {records:,} records (CPU)",
            ours,
            "s",
            "bare framing loop",
            floor,
            f"≤ {TARGET:g}× floor",
            ours <= TARGET * floor,
            f"{ours / records * 1e6:.2f} µs per record ({steps:,} steps of 17 tags): framed and "
            f"CRC-checked {crc / records * 1e6:.2f} µs, decoded {(decode - crc) / records * 1e6:.2f} µs, "
            f"aggregate and snapshot {(ours - decode) / records * 1e6:.2f} µs; floor {floor / records * 1e6:.2f} µs",
        )
    )
    _format_rows(ctx)
    _folder_rows(ctx)
