"""Bytes on disk through the whole pipeline: ``LogSource.refresh()`` (tailing,
decoding, detection) → parser → aggregator → ``stats()`` → ``snapshot.build``
→ every export format.

Besides "never raises, never hangs, nothing negative, strict JSON", one
property pins the tailer: a line log appended in arbitrary chunks (cut
mid-line, mid-UTF-8 character, mid-CRLF) and refreshed after each chunk ends
with exactly the figures of one read of the finished file. Nothing is lost
at a chunk boundary and nothing is counted twice.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainwatch.core.names import Names
from trainwatch.ingest.publish import build
from trainwatch.ingest.source import LogSource

from . import helpers
from .helpers import NOW, check_stats, render_everything, scale, within_budget
from .test_fuzz_parsers import HOSTILE, corpus_files, mutate

KEY_FIGURES = ("iter", "logged_iters", "eval_iters", "segments", "train_time_logged_s", "status", "loss")


def key_figures(source: LogSource) -> str:
    """The figures that must agree, as text (a diverged loss is NaN, and NaN != NaN)."""
    stats = source.agg.stats(NOW)
    return repr(tuple(getattr(stats, name) for name in KEY_FIGURES))


def read_once(path: Path) -> LogSource:
    source = LogSource(path)
    source.refresh()
    source.flush()
    return source


def check_source(source: LogSource, what: str, every_format: bool = True) -> None:
    snapshot = build([source], Names(), NOW)
    for row in snapshot.rows:
        check_stats(row.stats, what)
    if every_format:
        render_everything(snapshot)
    else:
        helpers.strict_json(helpers.render(snapshot, "json"))


def append_in_chunks(path: Path, data: bytes, rng: random.Random, pieces: int) -> LogSource:
    """Write ``data`` to ``path`` in ``pieces`` random chunks, refreshing after each."""
    cuts = sorted(rng.sample(range(1, len(data)), min(pieces - 1, max(0, len(data) - 1))))
    source = LogSource(path)
    path.write_bytes(b"")
    last = 0
    for cut in [*cuts, len(data)]:
        with open(path, "ab") as handle:
            handle.write(data[last:cut])
        last = cut
        source.refresh()
    source.flush()
    return source


def _line_logs() -> list[str]:
    if not helpers.CORPUS.is_dir():
        return ["no-corpus"]
    return [p.name for p, spec in corpus_files() if spec.kind == "lines"]


@pytest.mark.parametrize("name", _line_logs())
def test_chunked_appends_equal_one_read(name: str, tmp_path: Path) -> None:
    if name == "no-corpus":
        pytest.skip("../shared/corpus not present")
    path, _ = next((p, s) for p, s in corpus_files() if p.name == name)
    data = path.read_bytes()
    if not helpers.FULL:
        data = data[:150_000]
    rng = random.Random(name)
    target = tmp_path / path.name
    with within_budget(len(data) * 3, f"{name}: chunked appends"):
        chunked = append_in_chunks(target, data, rng, pieces=scale(40, 400))
    whole = read_once(target)
    assert whole.spec is chunked.spec
    assert key_figures(chunked) == key_figures(whole)
    check_source(chunked, name)


@pytest.mark.parametrize("name", _line_logs())
def test_mutated_logs_through_source(name: str, tmp_path: Path) -> None:
    if name == "no-corpus":
        pytest.skip("../shared/corpus not present")
    path, _ = next((p, s) for p, s in corpus_files() if p.name == name)
    data = path.read_bytes()[: scale(60_000, 3_000_000)]
    rng = random.Random(name + "/source")
    for kind in range(8):
        what, mutated = mutate(data, rng, kind)
        target = tmp_path / f"{kind}{path.suffix}"
        target.write_bytes(mutated)
        with within_budget(len(mutated), f"{name}: {what}"):
            source = read_once(target)
        check_source(source, f"{name}: {what}", every_format=kind == 2)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_files(case: str, tmp_path: Path) -> None:
    """The hand-made hostile inputs as files, named so that each format is tried."""
    data = HOSTILE[case]
    for name in ("train.log", "trainer_state.json", "trainer_log.jsonl", "metrics.csv", "run.json"):
        target = tmp_path / name
        target.write_bytes(data)
        with within_budget(len(data), f"{case} as {name}"):
            source = read_once(target)
            # Appended to a second time (tail path), then cut back (truncation path).
            with open(target, "ab") as handle:
                handle.write(data[: len(data) // 3])
            source.refresh()
            target.write_bytes(data[:100])
            source.refresh()
            source.flush()
        check_source(source, f"{case} as {name}", every_format=name == "train.log")


def test_document_rewritten_badly_keeps_last_good(corpus: Path, tmp_path: Path) -> None:
    """A document cut, bit-flipped or filled with junk between good versions: the
    source keeps the last good parse and ends equal to a fresh read."""
    src = corpus / "llm_tii_json" / "run_20251113_225009.json"
    data = src.read_bytes()
    target = tmp_path / src.name
    target.write_bytes(data)
    source = LogSource(target)
    source.refresh()
    good = key_figures(source)
    rng = random.Random(7)
    for round_ in range(scale(12, 200)):
        what, mutated = mutate(data, rng, round_ % 4)
        target.write_bytes(mutated)
        source.refresh()
        check_source(source, what, every_format=False)
        target.write_bytes(data)
        source.refresh()
        assert key_figures(source) == good, what


_chunks = st.lists(st.binary(max_size=300) | st.sampled_from([b"\n", b"\r\n", b"\xc3", b"\x00", b"\xff"]), max_size=40)


@settings(
    max_examples=scale(60, 1500),
    deadline=3000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.sampled_from(["train.log", "log.txt", "trainer_log.jsonl", "metrics.csv"]), st.data())
def test_hypothesis_bytes_through_source(tmp_path: Path, name: str, data: st.DataObject) -> None:
    """Corpus-shaped lines and raw bytes, appended in random chunks to a real file."""
    lines = data.draw(st.lists(st.sampled_from(_shapes()), max_size=30))
    body = "\n".join(lines).encode()
    extra = data.draw(_chunks)
    chunks = [body[i : i + 97] for i in range(0, len(body), 97)] + extra
    order = data.draw(st.permutations(range(len(chunks)))) if data.draw(st.booleans()) else range(len(chunks))
    target = tmp_path / name
    target.write_bytes(b"")
    source = LogSource(target)
    for index in order:
        with open(target, "ab") as handle:
            handle.write(chunks[index])
        source.refresh()
    source.flush()
    check_source(source, name, every_format=False)


def _shapes() -> list[str]:
    from .test_fuzz_parsers import HOSTILE_TOKENS, format_lines

    shapes = ["iter 10: loss 2.5, time 100.00ms, mfu 10.00%", "step 20: train loss 2.0, val loss 2.1"]
    if helpers.CORPUS.is_dir():
        for fmt in ("nanogpt_stdout", "llamafactory_jsonl", "lightning_csv", "llmc_stdout", "torchtitan_stdout"):
            shapes += format_lines(fmt)[:40]
    return shapes + HOSTILE_TOKENS
