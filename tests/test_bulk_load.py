"""The bulk path of a text log gives the figures of the per-line path, to the bit.

A nanoGPT log is read in bulk: ``NanoGPTStdoutParser.feed_text`` hands runs
of plain ``iter`` lines over as ``IterationColumns`` and the aggregator takes
them in C passes (``aggregate_take.take_columns``). The per-line path (``feed``
per line, one ``Iteration`` each, ``take_iterations``) is the reference: for
the real logs of the corpus and for generated line streams (restarts, evals,
config lines, odd lines, the MFU sentinel, numbers that overflow, chunk
boundaries anywhere) every figure, series and column must be the same.
"""

from __future__ import annotations

import math
import random
import struct
from array import array
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import bulkcheck
import pytest
from bulkcheck import NOW, PerLineSource, assert_same, corpus_logs, expanded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainwatch.core import aggregate_take
from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import BulkRecord, Checkpoint, Eval, Iteration, IterationColumns, Outcome, Record, RunInfo
from trainwatch.core.series import Series
from trainwatch.ingest import source
from trainwatch.ingest.source import LogSource
from trainwatch.parsers.nanogpt_stdout import NanoGPTStdoutParser

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None)


def feed_per_line(text: str) -> list[Record]:
    return bulkcheck.feed_per_line(NanoGPTStdoutParser, text)


def feed_bulk(text: str, cuts: Sequence[int] = ()) -> list[BulkRecord]:
    return bulkcheck.feed_bulk(NanoGPTStdoutParser, text, cuts)


# ------------------------------------------------------------------ corpus


LOGS = corpus_logs("nanogpt_stdout")
# None of the corpus logs echoes its config, so their eval steps are found by
# the outlier rule. The same lines after a config echo take the interval rule.
PREAMBLES = {
    "as logged": b"",
    "eval_interval 100": b"Overriding config with config/x.py:\neval_interval = 100\nlog_interval = 10\n",
    "eval_interval 1000, at start": b"eval_interval = 1000\neval_at_start = True\n",
}


def test_the_corpus_has_nanogpt_logs() -> None:
    if not LOGS:
        pytest.skip("../shared/corpus not present")
    assert len(LOGS) >= 3, LOGS


@pytest.mark.parametrize("preamble", PREAMBLES.values(), ids=PREAMBLES.keys())
@pytest.mark.parametrize("path", LOGS, ids=[p.name for p in LOGS])
@pytest.mark.parametrize("chunk", [source.CHUNK, 4096, 997])
def test_corpus_bulk_equals_per_line(
    path: Path, preamble: bytes, chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / path.name
    log.write_bytes(preamble + path.read_bytes())
    reference = PerLineSource(log)
    reference.refresh()
    reference.flush()
    monkeypatch.setattr(source, "CHUNK", chunk)  # chunk boundaries all over the file
    bulk = LogSource(log)
    bulk.refresh()
    bulk.flush()
    assert bulk.format == "nanogpt_stdout"
    assert_same(bulk.agg, reference.agg)


@pytest.mark.parametrize("path", LOGS, ids=[p.name for p in LOGS])
def test_corpus_records_equal_per_line(path: Path) -> None:
    """``feed_text`` gives ``feed``'s records, in order, with runs of plain lines as columns."""
    text = path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
    text = text[: text.rfind("\n") + 1]
    records = feed_bulk(text, cuts=range(0, len(text), 5000))
    assert any(isinstance(r, IterationColumns) for r in records)
    assert repr(expanded(records)) == repr(feed_per_line(text))


# ------------------------------------------------------------ line streams

_value = st.floats(0, 1e5, allow_nan=False).map(lambda x: f"{x:.2f}")
_odd_number = st.sampled_from(["0", "0.0", "1.", ".5", "1.2.3", ".", "9" * 400, "100.00", "-100.00"])
_loss = st.one_of(_value, _value, st.sampled_from(["nan", "inf", "-1.5", "1e-05", "+2.0", "1.2.3", "9" * 400, "abc"]))
_time = st.one_of(_value, _value, _odd_number)
_mfu = st.one_of(_value, st.just("-100.00"), _odd_number.map(lambda s: s.lstrip("-")), st.just("-5.00"))
# A step relative to the previous one: mostly forward, sometimes back (a restart).
_gap = st.one_of(st.just(1), st.just(1), st.integers(1, 20), st.integers(-30, 0))
# Mostly lines nanoGPT prints (one in 15 odd), so that long runs of them are common.
_plain = st.integers(0, 14).flatmap(
    lambda k: st.tuples(_gap, _loss, _time, _mfu) if k == 0 else st.tuples(st.just(1), _value, _value, _value)
)
_odd_lines = st.sampled_from(
    [
        "",
        "   ",
        "saving checkpoint to out",
        "eval_interval = 10",
        "eval_interval = 7",
        "log_interval = 1",
        "max_iters = 300",
        "eval_at_start = True",
        "custom_key = 3",  # config only inside a config file's echo, which an iter line ends
        "Overriding config with config/train_gpt2.py:",
        "Overriding: eval_interval = 5",
        "tokens per iteration will be: 1,024",
        "number of parameters: 1.5M",
        "GRADIENT IS NONE!!! at 0",
        "Traceback (most recent call last):",
        '  File "train.py", line 1, in <module>',
        "RuntimeError: boom",
        "📍 Iter     {step} │ Loss: 10.7652 │ Time: 1838ms │ LR: 1.65e-06",
        "─────────────",
        "⚡ MFU: 10.44% │ Achieved: 939.7 TF │ Peak: 9000.0 TF",
        "   Tokens/s: 106979 │ FLOPs/token: 8.78 GF",
        "📊 Gradients: norm=2.3456 │ mean=-1.23e-05",
        "📊 EVALUATION │ Step {step}",
        "Train loss: 1.0 │ Val loss: 2.0",
        "✅ Training completed!",
        "iter {step}: loss 1.0, time 5ms",
        "Iter {step}: loss 1.0, time 5.00 ms, mfu 3.00 %",
        "[rank0]: iter {step}: loss 1.0, time 5.00ms, mfu 3.00%",
        "progress\riter {step}: loss 1.0, time 5.00ms, mfu 3.00%",
        "iter ٣: loss 1.0, time 5.00ms, mfu 3.00%",
        "iter {step}: loss 1.0, time 5.00ms, mfu 3.00% extra",
        "iter 99999999999: loss 1.0, time 5.00ms, mfu 3.00%",
        "iter " + "9" * 5000 + ": loss 1.0, time 5.00ms, mfu 3.00%",
        "step {step}: train loss 2.0, val loss 2.1",
        "step {step}: train loss 2.0, val loss 2.1",
        "slurmstepd: error: *** JOB 1 CANCELLED AT 2024-01-01T00:00:00 DUE TO TIME LIMIT ***",
    ]
)
RESET = "<the next step is 0>"
_ops = st.lists(
    st.one_of(
        st.lists(_plain, min_size=1, max_size=10),
        st.lists(_plain, min_size=8, max_size=60),
        _odd_lines,
        _odd_lines.map(lambda s: s + "\r"),
        st.just(RESET),
    ),
    max_size=30,
)
_headers = st.sampled_from(
    [
        "tokens per iteration will be: 491,520",
        "Overriding config with config/train_gpt2.py:",
        "iter 0: loss 10.9, time 500.00ms, mfu -100.00%",
        "step 0: train loss 10.9, val loss 10.9",
    ]
)


def lines_of(header: str, ops: list[Any]) -> list[str]:
    """A nanoGPT-like console: runs of plain lines with steps going on (and back), odd lines between."""
    lines, step = [header], 0
    for op in ops:
        if op == RESET:
            step = -1
            continue
        if isinstance(op, str):
            lines.append(op.replace("{step}", str(max(step, 0))))
            continue
        for gap, loss, time_ms, mfu in op:
            step = max(0, step + gap)
            lines.append(f"iter {step}: loss {loss}, time {time_ms}ms, mfu {mfu}%")
    return lines


@FAST
@given(header=_headers, ops=_ops, crlf=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_line_streams_bulk_equals_per_line(header: str, ops: list[Any], crlf: bool, seed: int) -> None:
    lines = lines_of(header, ops)
    data = ("\r\n" if crlf else "\n").join(lines).encode() + b"\n"
    if seed % 5 == 0:
        data = data.replace(b"loss", b"lo\xffss", 1)  # invalid UTF-8 somewhere
    # The reference reads it in one piece; the bulk path in pieces cut anywhere
    # (mid-line, mid-character, between \r and \n).
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 12))))
    reference, bulk = PerLineSource(Path("run.log")), LogSource(Path("run.log"))
    reference.feed_bytes(data, "id", 0)
    offset = 0
    for end in [*cuts, len(data)]:
        bulk.feed_bytes(data[offset:end], "id", offset)
        offset = end
    reference.flush()
    bulk.flush()
    assert bulk.format == reference.format
    assert_same(bulk.agg, reference.agg)


@FAST
@given(header=_headers, ops=_ops, cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_line_streams_records_equal_per_line(header: str, ops: list[Any], cuts: list[int]) -> None:
    text = "\n".join(lines_of(header, ops)) + "\n"
    assert repr(expanded(feed_bulk(text, cuts))) == repr(feed_per_line(text))


def test_feed_text_takes_runs_of_plain_lines_as_columns() -> None:
    text = "".join(f"iter {k}: loss 2.5, time 10.00ms, mfu {-100 if k < 2 else 30}.00%\n" for k in range(20))
    parser = NanoGPTStdoutParser()
    parser.feed("log_interval = 1")  # a pending RunInfo: the first plain line takes feed's general path
    records = parser.feed_text(text)
    assert [type(r) for r in records] == [RunInfo, Iteration, IterationColumns]
    columns = records[2]
    assert isinstance(columns, IterationColumns)
    assert columns.iters == list(range(1, 20))
    assert columns.mfu_pct[:2] == [None, 30.0]  # the warm-up sentinel means "no MFU"
    assert parser.feed_text("") == []


def test_plain_lines_end_a_config_echo() -> None:
    """As in ``feed``, an iter line ends the echo of a config file: a later ``x = 3`` print is no config."""
    plain = "".join(f"iter {k}: loss 2.5, time 10.00ms, mfu 30.00%\n" for k in range(10))
    text = f"Overriding config with config/x.py:\n{plain}custom_key = 3\nbatch_size = 4\n\n"
    records = feed_bulk(text)
    assert isinstance(records[1], IterationColumns)  # (records[0]: the format's RunInfo)
    assert repr(expanded(records)) == repr(feed_per_line(text))
    configs = [r.config for r in records if isinstance(r, RunInfo) and r.config]
    assert configs == [{"batch_size": 4}]


def test_plain_lines_after_an_open_traceback_stay_linear() -> None:
    """A traceback without its exception line keeps ``feed`` off its fast path: each
    plain line then goes through it alone, once, and each call sees one line (a
    rescan of what follows, at every line, would make a long log quadratic)."""
    seen: list[int] = []

    class Counting(NanoGPTStdoutParser):
        def feed(self, line: str) -> list[Record]:
            seen.append(len(line))
            return super().feed(line)

    plain = "".join(f"iter {k}: loss 2.5, time 10.00ms, mfu 30.00%\n" for k in range(50_000))
    text = "Traceback (most recent call last):\n" + plain
    records = Counting().feed_text(text)
    assert sum(isinstance(r, Iteration) for r in records) == 50_000
    assert seen == [len(line) for line in text.split("\n")[:-1]]


# -------------------------------------------------------------- aggregator

_steps = st.one_of(st.integers(0, 60), st.integers(0, 60), st.sampled_from([-1, 2**31 - 1, 2**31, 10**20]))
_floats = st.one_of(
    st.floats(0, 1e4),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-0.0, 0.0, 1e12, 1e13, 1e9, 2e9, -100.0]),
)


def _rising(start: int, gaps: list[int]) -> list[int]:
    """Steps from ``start`` by ``gaps`` (a gap of 0 or less is a restart)."""
    steps = [start]
    for gap in gaps:
        steps.append(steps[-1] + gap)
    return steps


_step_lists = st.one_of(
    st.builds(_rising, st.just(0) | st.integers(0, 40), st.lists(st.sampled_from([1, 1, 1, 2, 5, 0, -3]), max_size=24)),
    st.lists(_steps, min_size=1, max_size=25).map(sorted),
    st.lists(_steps, min_size=1, max_size=25),
)


# Wall-clock times now steady, now far apart (a hang), now going back.
_walls = st.integers(0, 4000).map(lambda s: datetime(2025, 1, 1) + timedelta(seconds=s * s / 100))


def _column(n: int, values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An optional column of ``n`` rows (``None``: no row has the field)."""
    return st.none() | st.lists(values, min_size=n, max_size=n)


# Times and losses: mostly logged (a run of timed rows), sometimes none or a
# mix (untimed rows, as build-nanogpt's); rates, tokens seen and wall-clock
# times now and then, as llm.c's, Megatron's and torchtitan's columns have them.
_columns = _step_lists.flatmap(
    lambda steps: st.builds(
        IterationColumns,
        st.just(steps),
        st.lists(st.none() | _floats, min_size=len(steps), max_size=len(steps)),
        st.one_of(
            st.lists(st.floats(0, 1e4) | _floats, min_size=len(steps), max_size=len(steps)),
            st.just([None] * len(steps)),
            st.lists(st.none() | st.floats(0, 1e4), min_size=len(steps), max_size=len(steps)),
        ),
        st.lists(st.none() | st.floats(1, 100) | _floats, min_size=len(steps), max_size=len(steps)),
        tokens_per_sec=_column(len(steps), st.none() | st.floats(0, 1e5) | _floats),
        lr=_column(len(steps), st.none() | _floats),
        grad_norm=_column(len(steps), st.none() | _floats),
        tokens_seen=_column(len(steps), st.none() | st.integers(-5, 2**63)),
        wall_time=st.none() | st.lists(st.none() | _walls, min_size=len(steps), max_size=len(steps)),
    )
)
_others = st.one_of(
    st.builds(
        RunInfo,
        eval_interval=st.none() | st.integers(1, 12),
        eval_at_start=st.none() | st.booleans(),
        eval_timing=st.sampled_from([None, "same", "next", "excluded"]),
    ),
    st.builds(Eval, iter=_steps, val_loss=st.none() | _floats),
    st.builds(Checkpoint, iter=st.none() | _steps),
    st.builds(Outcome, kind=st.sampled_from(["finished", "failed"])),
    # Rows with a rate or a wall time make the optional columns exist.
    st.builds(
        Iteration,
        iter=_steps,
        time_ms=st.none() | _floats,
        tokens_per_sec=st.none() | _floats,
        wall_time=st.none() | st.just(datetime(2025, 1, 1)),
    ),
)


@settings(
    max_examples=400, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(st.one_of(_columns, _columns, _others), max_size=20), st.booleans())
def test_columns_equal_their_rows(records: list[BulkRecord], one_by_one: bool) -> None:
    """Any columns (out-of-range steps, restarts mid-columns, NaN/inf/negative times,
    bad MFUs, every eval rule) move an aggregator as their rows would."""
    bulk, reference = RunAggregator(), RunAggregator()
    if one_by_one:
        for record in records:
            bulk.add(record)
    else:
        bulk.add_all(records)
    reference.add_all(expanded(records))
    assert_same(bulk, reference)


def test_columns_sent_row_by_row_take_their_wall_times_once() -> None:
    """Columns whose times sum past MAX_TIME_MS (one is 1e12 ms, in range on
    its own) go through the row loop whole, wall-clock times included: the
    bulk path once added those times a second time (Hypothesis found it)."""
    times: list[float | None] = [100.0] * 7 + [1e12]
    walls: list[datetime | None] = [None] * 7 + [datetime(2025, 1, 1)]
    records: list[BulkRecord] = [IterationColumns(list(range(1, 9)), [2.0] * 8, times, [None] * 8, wall_time=walls)]
    bulk, reference = RunAggregator(), RunAggregator()
    bulk.add_all(records)
    reference.add_all(expanded(records))
    assert list(bulk.wall_series.points().xs) == [8.0]
    assert_same(bulk, reference)


def _plain_columns(steps: list[int]) -> IterationColumns:
    return IterationColumns(steps, [2.0] * len(steps), [100.0 + s % 7 for s in steps], [30.0] * len(steps))


@pytest.mark.parametrize(
    "info",
    [
        RunInfo(eval_interval=10),
        RunInfo(eval_interval=10, eval_at_start=True),
        RunInfo(eval_interval=10, eval_timing="next"),
        RunInfo(eval_interval=10, eval_timing="excluded"),
        RunInfo(eval_interval=1000),
        RunInfo(),  # the outlier rule
    ],
    ids=repr,
)
@pytest.mark.parametrize("evals", [[], [0], [5, 20], [0, 10, 35]], ids=repr)
def test_eval_rules_in_columns(info: RunInfo, evals: list[int]) -> None:
    """Each eval rule, at the start of a segment, on a multiple of the interval, on a logged eval."""
    records: list[BulkRecord] = [info, *(Eval(k, val_loss=1.0) for k in evals)]
    records += [_plain_columns(list(range(0, 40))), Eval(45, val_loss=1.0)]
    records += [_plain_columns(list(range(41, 90, 1))), _plain_columns(list(range(30, 60, 3)))]  # a restart
    records += [_plain_columns([60, 61, 62, 63, 64, 65, 66, 67, 68, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69])]
    bulk, reference = RunAggregator(), RunAggregator()
    bulk.add_all(records)
    reference.add_all(expanded(records))
    assert_same(bulk, reference)


def _hung_columns(steps: list[int], hung: dict[int, float]) -> IterationColumns:
    times = [hung.get(s, 100.0 + s % 7) for s in steps]
    return IterationColumns(steps, [2.0] * len(steps), times, [30.0] * len(steps))


@pytest.mark.parametrize("checkpoint", [False, True], ids=["plain", "checkpoint before 31"])
@pytest.mark.parametrize(
    ("hung", "expected"),
    [
        ({12: 9_000.0}, [12]),  # one hang: 9 s among steps of 100-106 ms
        ({31: 9_000.0}, [31]),  # right after the checkpoint: a save, not a hang
        # early (4: a window of 101, 102, 103 ms), two in a row, just over 5× the median
        # (8: 520 > 5 × 103, the median of 100, 101, 102, 103, 106, 9000, 9000), a huge one
        ({4: 9_000.0, 5: 9_000.0, 8: 520.0, 21: 1e6}, [4, 5, 8, 21]),
        ({0: 9_000.0, 10: 9_000.0, 41: 9_000.0}, [41]),  # the warm-up step, an eval step; 41 after the restart
        # a slowdown that lasts (50 and 60 are evals): once 4 of the 16 steps of the
        # window are slow (51-54), the upper quartile is slow too: the slow steps are the pace
        ({k: 100_000.0 for k in range(50, 70)}, list(range(51, 55))),
        # every third step takes 400 ms (after the restart at 35: 6 of the 16 before
        # step 55): median 104.5 ms (5× = 522.5), but Q1 = 103, Q3 = 400, so the far
        # fence 400 + 3 × 297 = 1,291 ms keeps the 1,200 ms step 55 from being a hang;
        # step 58 at 5,000 ms is one (median 105.5, Q1 103, Q3 400: limit 1,291)
        ({**{k: 400.0 for k in range(3, 70, 3)}, 55: 1_200.0, 58: 5_000.0}, [58]),
    ],
    ids=repr,
)
def test_hangs_in_columns_equal_their_rows(hung: dict[int, float], expected: list[int], checkpoint: bool) -> None:
    """The hang rule (RunState.excess) finds the same steps in bulk as row by
    row, with the same sums, series and events."""
    records: list[BulkRecord] = [RunInfo(eval_interval=10)]
    records += [_hung_columns(list(range(0, 31)), hung)]
    if checkpoint:
        records.append(Checkpoint(iter=31))
    records += [_hung_columns(list(range(31, 45)), hung), _hung_columns(list(range(35, 70)), hung)]  # a restart
    bulk, reference = RunAggregator(), RunAggregator()
    bulk.add_all(records)
    reference.add_all(expanded(records))
    assert_same(bulk, reference)
    one_by_one = RunAggregator()
    for record in records:
        one_by_one.add(record)
    assert_same(one_by_one, reference)
    if checkpoint:
        expected = [k for k in expected if k != 31]
    assert [step for step, _ in bulk.hangs] == expected
    if len(hung) < 10 and 0 not in hung:  # (the warm-up step is in the mean, as in the seed's table)
        # left out of the pace either way: the mean step is the ordinary ones' (100-106 ms)
        assert bulk.stats(NOW).mean_iter_s == pytest.approx(0.103, abs=0.003)


# ------------------------------------------------------------------ pieces

_xs = st.lists(st.integers(0, 2**31 - 1), max_size=300)


@FAST
@given(_xs, st.data(), st.sampled_from([4, 6, 8, 512]))
def test_series_extend_equals_append(xs: list[int], data: st.DataObject, capacity: int) -> None:
    ys = data.draw(st.lists(_floats, min_size=len(xs), max_size=len(xs)))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(xs)), max_size=6)))
    one, steps, floats = Series(capacity), Series(capacity), Series(capacity)
    for x, y in zip(xs, ys, strict=True):
        one.append(x, y)
    start = 0
    for end in [*cuts, len(xs)]:
        steps.extend_steps(xs[start:end], ys[start:end])
        floats.extend([float(x) for x in xs[start:end]], ys[start:end])
        start = end
    for series in (steps, floats):
        assert repr(series.points()) == repr(one.points())
        assert repr((series._pending, series._pend_x, series._pend_y)) == repr((one._pending, one._pend_x, one._pend_y))


@FAST
@given(st.lists(st.floats(width=32) | st.floats(-1e30, 1e30), max_size=50), st.lists(st.integers(0, 2**31 - 1)))
def test_struct_packing_equals_array_extend(floats: list[float], ints: list[int]) -> None:
    for typecode, values in (("f", floats), ("d", floats), ("i", ints)):
        packed, extended = array(typecode), array(typecode)
        aggregate_take._extend(packed, values)
        extended.extend(values)
        assert packed.tobytes() == extended.tobytes(), typecode


def test_all_in_bounds() -> None:
    assert aggregate_take._all_in([0.0, -0.0, 5.0], 0.0, 10.0)
    for bad in ([math.nan, 1.0], [1.0, math.nan], [1.0, math.inf], [-1e-300, 1.0], [11.0], [1e308, 1e308]):
        assert not aggregate_take._all_in(bad, 0.0, 10.0), bad
    assert not aggregate_take._all_in([1.0, None], 0.0, 10.0)  # type: ignore[list-item]
    assert struct.calcsize("3f") == array("f").itemsize * 3  # packed as the array lays them out


@pytest.mark.parametrize("timing", [None, "next"])
def test_stamped_columns_with_hangs(timing: str | None) -> None:
    """Untimed rows with wall-clock times (torchtitan's): each interval is its
    step's pace; a 20-minute gap among 5-second steps is a hang; a save
    announced before it is none. Columns and rows agree."""
    start = datetime(2026, 4, 27, 16, 0)
    seconds = [5.0 * k for k in range(40)] + [5.0 * 40 + 1200 + 5.0 * k for k in range(40)]
    steps = list(range(1, 81))
    columns = IterationColumns(
        steps,
        [2.0] * 80,
        [None] * 80,
        [30.0] * 80,
        tokens_per_sec=[3200.0] * 80,
        wall_time=[start + timedelta(seconds=s) for s in seconds],
    )
    for save in (False, True):
        records: list[BulkRecord] = [RunInfo(eval_timing=timing), columns]
        if save:  # the save comes just before the slow step, as a log announces it
            records = [RunInfo(eval_timing=timing), columns.select([k < 40 for k in range(80)]), Checkpoint(40)]
            records.append(columns.select([k >= 40 for k in range(80)]))
        bulk, reference = RunAggregator(), RunAggregator()
        bulk.add_all(records)
        reference.add_all(expanded(records))
        assert_same(bulk, reference)
        assert [h[0] for h in bulk.hangs] == ([] if save else [41])
