"""Every parser against hostile and mangled input: it must never raise, never
hang, and never make the aggregator report a negative or non-finite time or
count; every export of the result must render (the JSON strictly valid).

Three sources of input:

* hand-made hostile cases (a 10 MB line, invalid UTF-8, NUL bytes, ``1e309``,
  ``nan``, ``-0``, 100k ``[``, 5,000-digit integers, negative steps and times);
* deterministic mutations of the real corpus files, read in place (cut
  anywhere, bits flipped, numbers replaced by hostile tokens, junk inserted,
  lines reordered);
* hypothesis, drawing lines from the corpus of each format and mangling them
  (line parsers), or JSON documents with hostile values (document parsers).

Each case runs under a SIGALRM deadline per MB (``helpers.within_budget``),
so a catastrophic regex backtrack fails instead of hanging.
"""

from __future__ import annotations

import json
import random
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainwatch import parsers
from trainwatch.outputs.export import render
from trainwatch.parsers import PARSERS
from trainwatch.parsers.base import ParserSpec

from . import helpers
from .helpers import (
    check_stats,
    parse,
    render_everything,
    scale,
    snapshot_of,
    stats_of,
    strict_json,
    within_budget,
)

CORPUS = helpers.CORPUS
LINE_SPECS = [s for s in PARSERS if s.kind == "lines"]
DOC_SPECS = [s for s in PARSERS if s.kind == "document"]
IDS = [s.format for s in PARSERS]

#: Tokens that have broken number parsing somewhere, sometime.
HOSTILE_TOKENS = [
    "1e309",
    "-1e309",
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-inf",
    "Infinity",
    "-Infinity",
    "-0",
    "-0.0",
    "0",
    "-1",
    "-99999",
    "1e-400",
    "9" * 25,
    "9" * 400,
    "9" * 5000,
    "-" + "9" * 5000,
    "1" * 300 + ".5",
    "١٢٣",  # Arabic-Indic digits: str.isdigit() and int() agree on these ...
    "²",  # ... but not on this one (isdigit() is True, int() raises)
    "0x1F",
    "1_000",
    "",
    "null",
    "true",
    "[]",
    "{}",
    '"',
    "\x00",
    "\x1b[2J",
    "\r",
    "\ufffd",
]


def _expect_ok(spec: ParserSpec, data: bytes, what: str, every_format: bool = True) -> None:
    """Parse, aggregate, check, export: the whole pipeline after the bytes.

    ``every_format=False``: strict JSON only (pandas makes md/csv/html ~20 ms each).
    """
    with within_budget(len(data), f"{spec.format}: {what}"):
        records = parse(spec, data)
        stats = stats_of(records)
    check_stats(stats, f"{spec.format}: {what}")
    snapshot = snapshot_of(stats, fmt=spec.format)
    if every_format:
        render_everything(snapshot)
    else:
        strict_json(render(snapshot, "json"))


# ----------------------------------------------------------- hostile cases


def _hostile_cases() -> dict[str, bytes]:
    ten_mb = 10_000_000
    soup = (
        "iteration 1/ 2 | validation loss at iteration 5 | norm= Iter 1 | Loss: 1 | Time: step: 1 loss: 2 "
        "[rank0]: step 3/4 | loss 1.0 (x)| Tokens/s: 1, MFU: 1% Peak: x EVALUATION | Step 1 Train loss: 1 | "
        "Val loss: Building 1-D device mesh with [ , [1, CUDA capacity: x with 1 GiB memory *** JOB 1 ON x "
        'CANCELLED AT x DUE TO  Traceback (most recent call last) {"current_steps": 1, "loss": NaN, "x":[[[ '
    )
    nano = "iter {i}: loss {loss}, time {t}ms, mfu {m}%\n"
    good = "".join(nano.format(i=i, loss=2.5, t=100.0, m=10.0) for i in range(0, 50, 10))
    big = "9" * 5000
    return {
        "10MB line of keywords": (soup * (ten_mb // len(soup) + 1))[:ten_mb].encode() + b"\n",
        "10MB line of spaces then a record": b" " * ten_mb + good.encode(),
        "invalid utf-8": b"\xff\xfe\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x90\x28\xbc\n" * 2000 + good.encode(),
        "NUL bytes": b"\x00" * 5000 + b"\n" + good.replace("iter", "\x00iter").encode() + b"\x00" * 100,
        "1e309 and nan": (
            good
            + nano.format(i=60, loss="nan", t="1e309", m="nan")
            + nano.format(i=70, loss="1e309", t="nan", m="1e309")
            + '{"current_steps": 80, "total_steps": 1e309, "loss": NaN, "elapsed_time": "-1:00:00"}\n'
            + '{"step": 90, "loss": Infinity, "iter": 1e309, "time_ms": -Infinity}\n'
        ).encode(),
        "negative zero": (good + nano.format(i=60, loss="-0", t="-0", m="-0.0")).encode(),
        "negative steps and times": (
            good
            + nano.format(i=-5, loss=1.0, t=-100.0, m=-50.0)
            + "step -1: train loss -1.0, val loss -2.0\n"
            + '{"current_steps": -3, "total_steps": -10, "loss": -1, "elapsed_time": "-1 day, 0:00:00"}\n'
        ).encode(),
        "huge integers": (
            f"iter {big}: loss 1.0, time 100.0ms, mfu 1.0%\n"
            f"step {big}/{big} | loss 1.0 (+0.00z)| norm 1.0 (+0.00z)| lr 1.0 | {big} ms | 1.0% bf16 MFU | 1 tok/s\n"
            f"{big} train 1.0\n{big} val 1.0\ns:{big} trl:1.0 lr:1.0 norm:1.0\n"
            f'{{"current_steps": {big}, "total_steps": {big}, "loss": 1.0, "elapsed_time": "{big} days, 0:00:00"}}\n'
            f"max_iters = {big}\nbatch_size = {big}\ntokens per iteration will be: {big}\n"
            f"epoch,step,train_loss\n0,{big},1.0\n" + good
        ).encode(),
        "deeply nested JSON": b'{"training_iterations": ' + b"[" * 100_000 + b"NaN" + b"]" * 100_000 + b"}",
        "deeply nested JSON, unclosed": b'{"log_history": ' + b"[" * 100_000 + b"NaN\n",
        "deep JSON lines": (b'{"current_steps": 1, "x": ' + b"[" * 100_000 + b"NaN\n") * 3,
        "CSV: quotes, a bare CR, a 200 KB field": b'epoch,step,train_loss\n0,1,"a",b\rc\n0,2,"'
        + b"x" * 200_000
        + b'"\n',
        "control characters": ("\r\x08\x7f\x9b\x1b]0;title\x07\x1b[2J" * 1000 + "\n" + good).encode(),
    }


HOSTILE = _hostile_cases()


@pytest.mark.parametrize("case", list(HOSTILE))
@pytest.mark.parametrize("spec", PARSERS, ids=IDS)
def test_hostile_input(spec: ParserSpec, case: str) -> None:
    _expect_ok(spec, HOSTILE[case], case)


# ------------------------------------------------- corpus, deterministically


@cache
def corpus_files() -> list[tuple[Path, ParserSpec]]:
    """Each corpus log and the parser the registry picks for it."""
    out = []
    for path in sorted(CORPUS.rglob("*")):
        if not path.is_file() or path.suffix in (".md", ".yaml"):
            continue
        with open(path, "rb") as handle:
            head = handle.read(parsers.SNIFF_BYTES_MORE)
        spec = parsers.detect_head(head, path.name)
        if spec is not None:
            out.append((path, spec))
    return out


def _corpus_ids() -> list[str]:
    return [p.name for p, _ in corpus_files()] if CORPUS.is_dir() else ["no-corpus"]


def mutate(data: bytes, rng: random.Random, kind: int) -> tuple[str, bytes]:
    """One deterministic mutation of ``data``: ``(description, bytes)``."""
    n = len(data)
    if kind == 0:
        cut = rng.randrange(n + 1)
        return f"cut at {cut}", data[:cut]
    if kind == 1:
        flipped = bytearray(data)
        for _ in range(rng.randrange(1, 64)):
            flipped[rng.randrange(n)] ^= 1 << rng.randrange(8)
        return "bits flipped", bytes(flipped)
    if kind == 2:
        text = data
        spots = [m for m in re.finditer(rb"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", data)]
        out, last = [], 0
        for m in sorted(rng.sample(spots, min(len(spots), 200)), key=lambda m: m.start()):
            out += [text[last : m.start()], rng.choice(HOSTILE_TOKENS).encode()]
            last = m.end()
        return "numbers replaced", b"".join([*out, text[last:]])
    if kind == 3:
        at = rng.randrange(n + 1)
        junk = rng.choice(list(HOSTILE.values()))[: rng.choice([1, 100, 10_000, 1_000_000])]
        return f"junk inserted at {at}", data[:at] + junk + data[at:]
    lines = data.split(b"\n")
    if kind == 4:
        rng.shuffle(lines)
        return "lines shuffled", b"\n".join(lines)
    if kind == 5:
        return "lines reversed", b"\n".join(reversed(lines))
    if kind == 6:
        cut = rng.randrange(n + 1)
        return f"cut at {cut}, invalid UTF-8 after", data[:cut] + b"\xc3\x28\xff" + data[cut:]
    return "duplicated", data + data


MUTATIONS = 8


@pytest.mark.parametrize("name", _corpus_ids())
def test_corpus_mutations(name: str) -> None:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus not present")
    path, spec = next((p, s) for p, s in corpus_files() if p.name == name)
    data = path.read_bytes()
    rng = random.Random(name)
    if not helpers.FULL and len(data) > 64_000:
        # CI size: a window of the file, starting at a line; --full uses all of it.
        start = data.find(b"\n", rng.randrange(len(data) - 64_000)) + 1
        data = data[:4096] + data[start : start + 64_000]
    for round_ in range(scale(1, 6)):
        for kind in range(MUTATIONS):
            what, mutated = mutate(data, rng, kind)
            _expect_ok(spec, mutated, f"{name}: {what} (round {round_})", every_format=kind == 2)
            # Another format's parser, fed the same bytes, must cope as well.
            other = rng.choice(PARSERS)
            _expect_ok(other, mutated[:200_000], f"{name} fed to {other.format}: {what}", every_format=False)


def test_every_corpus_file_truncated_everywhere(corpus: Path) -> None:
    """Each file (its first 128 KB under --full, where preambles and parser
    states live; only the small files at CI size) cut at many points."""
    cuts = 0
    for path, spec in corpus_files():
        data = path.read_bytes()
        if len(data) > 20_000 and not helpers.FULL:
            continue
        data = data[:131_072]
        step = max(1, len(data) // scale(150, 300))
        for cut in range(0, len(data) + 1, step):
            records = parse(spec, data[:cut])
            check_stats(stats_of(records), f"{path.name} cut at {cut}")
            cuts += 1
    assert cuts > 500


# -------------------------------------------------------------- hypothesis


@cache
def format_lines(fmt: str) -> list[str]:
    """Distinct line shapes of a format's corpus files (numbers generalised away)."""
    shapes: dict[str, str] = {}
    for path, spec in corpus_files() if CORPUS.is_dir() else []:
        if spec.format != fmt:
            continue
        for line in path.read_bytes()[:2_000_000].decode("utf-8", "replace").split("\n"):
            shapes.setdefault(re.sub(r"\d+", "0", line)[:120], line)
    return list(shapes.values()) or list(_GENERIC_LINES)


_GENERIC_LINES = (
    '{"step": 10, "loss": 2.5, "lr": 0.001, "time_ms": 100.0, "tokens_per_sec": 1000}',
    '{"iter": 20, "train/loss": 2.4, "dt": 0.1}',
    '{"global_step": 30, "loss": 2.3, "timestamp": 1700000000}',
    "iter 10: loss 2.5, time 100.00ms, mfu 10.00%",
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_token = st.sampled_from(HOSTILE_TOKENS) | st.text(max_size=20)


@st.composite
def mangled_lines(draw: st.DrawFn, fmt: str) -> str:
    """A corpus line of ``fmt`` whose numbers, bytes or ends were mangled."""
    line = draw(st.sampled_from(format_lines(fmt)))
    how = draw(st.integers(0, 5))
    if how == 0:
        return line
    if how == 1:  # numbers replaced
        spots = list(_NUMBER.finditer(line))
        if spots:
            m = draw(st.sampled_from(spots))
            return line[: m.start()] + draw(_token) + line[m.end() :]
        return line
    if how == 2:  # cut
        return line[: draw(st.integers(0, len(line)))]
    if how == 3:  # junk inserted
        at = draw(st.integers(0, len(line)))
        return line[:at] + draw(st.text(max_size=40)) + line[at:]
    if how == 4:  # repeated (long lines made of real tokens)
        return line * draw(st.integers(2, 200))
    return draw(st.text(max_size=200))


@pytest.mark.parametrize("spec", LINE_SPECS, ids=[s.format for s in LINE_SPECS])
def test_hypothesis_line_parsers(spec: ParserSpec) -> None:
    @settings(
        max_examples=scale(30, 600),
        deadline=2000,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(mangled_lines(spec.format), max_size=60))
    def run(lines: list[str]) -> None:
        data = "\n".join(lines).encode("utf-8", "surrogatepass")
        _expect_ok(spec, data, "hypothesis lines", every_format=False)

    run()


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([10**400, -(10**400), 2**63, 2**64, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)


def _json_value(depth: int = 3) -> st.SearchStrategy[Any]:
    return st.recursive(
        _leaf,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=depth * 4,
    )


@cache
def format_docs(fmt: str) -> list[Any]:
    docs = []
    for path, spec in corpus_files() if CORPUS.is_dir() else []:
        if spec.format == fmt and path.stat().st_size < 100_000:
            docs.append(json.loads(path.read_bytes()))
    return docs


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a JSON value (lists sampled: the first and last 3 entries)."""
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index in sorted({*range(min(3, len(node))), *range(max(0, len(node) - 3), len(node))}):
            out += _paths(node[index], (*prefix, index))
    return out


def _replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {**node, head: _replace(node[head], rest, value)}
    copy = list(node)
    copy[head] = _replace(node[head], rest, value)
    return copy


@st.composite
def mangled_documents(draw: st.DrawFn, fmt: str) -> bytes:
    docs = format_docs(fmt)
    doc: Any = draw(st.sampled_from(docs)) if docs else {}
    for _ in range(draw(st.integers(0, 6))):
        paths = _paths(doc)
        doc = _replace(doc, draw(st.sampled_from(paths)), draw(_json_value()))
    text = json.dumps(doc, allow_nan=True, indent=draw(st.sampled_from([None, 2])))
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("spec", DOC_SPECS, ids=[s.format for s in DOC_SPECS])
def test_hypothesis_document_parsers(spec: ParserSpec) -> None:
    @settings(
        max_examples=scale(40, 800),
        deadline=3000,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mangled_documents(spec.format))
    def run(data: bytes) -> None:
        _expect_ok(spec, data, "hypothesis document", every_format=False)

    run()
