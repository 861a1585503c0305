"""One small test per crash the fuzzers found (each failed before its fix)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Eval, Iteration, Record, RunInfo
from trainwatch.ingest.source import LogSource
from trainwatch.outputs.export import render
from trainwatch.parsers import buildnanogpt, hf_trainer_state, jsonl_metrics, lightning_csv, llamafactory, llmc

from .helpers import NOW, check_stats, snapshot_of, strict_json

BIG = "9" * 5000  # over int()'s 4,300-digit limit


def feed(parser: object, *lines: str) -> list[Record]:
    out: list[Record] = []
    for line in lines:
        out += parser.feed(line)  # type: ignore[attr-defined]
    return out


def test_lightning_csv_bare_cr_and_huge_field() -> None:
    """csv.Error escaped ``_split`` (lightning_csv.py): a bare CR, a field over 128 KB."""
    parser = lightning_csv.new_parser()
    feed(parser, "epoch,step,train_loss")
    assert feed(parser, '0,1,"a",b\rc') == []
    assert feed(parser, '0,2,"' + "x" * 200_000 + '"') == []
    assert feed(parser, '"' + "x" * 200_000 + ',step"') == []  # a header line too
    assert len(feed(parser, "0,3,1.5")) == 1


@pytest.mark.parametrize(
    "parse",
    [
        lambda data: hf_trainer_state.parse_document(data),
        lambda data: llamafactory.new_parser().feed(data.decode()),
        lambda data: jsonl_metrics.SPEC.new_line_parser().feed(data.decode()),  # type: ignore[misc]
    ],
    ids=["hf_trainer_state", "llamafactory", "jsonl_metrics"],
)
def test_deeply_nested_json_with_nan(parse: object) -> None:
    """RecursionError escaped jsonvalues.loads: orjson refuses 100k ``[``, the stdlib fallback (for NaN) recursed."""
    data = b'{"log_history": ' + b"[" * 100_000 + b"NaN"
    assert not parse(data)  # type: ignore[operator]


def test_llmc_huge_step_total() -> None:
    """int() of a 5,000-digit ``step 1/N`` total outside the try (llmc.py fast path) and in ``_int``."""
    line = f"step    1/{BIG} | loss 1.0 (+0.00z)| norm 1.0 (+0.00z)| lr 1.0 | 10.0 ms | 1.0% bf16 MFU | 1 tok/s"
    feed(llmc.SPEC.new_line_parser(), line)  # type: ignore[misc]
    rule = "+-----------------------+------------------+"
    box = [rule, "| Parameter | Value |", rule, f"| micro batch size B | {BIG} |", "| sequence length T | ² |", rule]
    feed(llmc.SPEC.new_line_parser(), *box, line.replace(BIG, "10"))  # type: ignore[misc]


def test_buildnanogpt_odd_digits() -> None:
    """``"²".isdigit()`` is True but int() refuses it; so it does 5,000 digits (buildnanogpt.py)."""
    parser = buildnanogpt.new_parser()
    assert feed(parser, "² train 1.0", f"{BIG} train 1.0") == []
    assert len(feed(parser, "5 train 1.0")) == 1


def test_llamafactory_odd_durations() -> None:
    """parse_duration (llamafactory.py): "²" and 5,000-digit days reached int()."""
    assert llamafactory.parse_duration("1:²2:03") is None
    assert llamafactory.parse_duration("²:02:03") is None
    assert llamafactory.parse_duration(f"{BIG} days, 1:02:03") is None
    assert llamafactory.parse_duration("2 days, 1:02:03") == 2 * 86400 + 3723


def _stats(*records: Record, now: datetime = NOW) -> None:
    agg = RunAggregator()
    agg.add_all(records)
    stats = agg.stats(now)
    check_stats(stats)
    strict_json(render(snapshot_of(stats), "json"))


STEPS = [Iteration(i, loss=1.0, time_ms=100.0) for i in range(10, 60, 10)]


@pytest.mark.parametrize(
    "info",
    [
        RunInfo(target=10**400),  # OverflowError: int too large to convert to float (metrics._eta)
        RunInfo(target=2**64),  # OverflowError in timedelta (metrics: finish_at)
        RunInfo(tokens_per_iter=10**400),  # OverflowError (metrics: tokens/hour)
        RunInfo(tokens_per_iter=-5),  # negative tokens/iter, tokens/hour, tokens/s
        RunInfo(batch_size=2**40, grad_accum=2**40, block_size=2**40),  # JSON: integer beyond 64 bits
        RunInfo(params=10**400, gpu="A100"),  # OverflowError in the derived MFU
        RunInfo(start_time=datetime(1, 1, 2)),  # (no crash before: a guard for the datetime arithmetic)
    ],
)
def test_corrupt_run_info(info: RunInfo) -> None:
    _stats(info, *STEPS)


def test_negative_runtime() -> None:
    """HF's train_runtime is the only rate of a log without step times: a negative one gave a negative ETA."""
    _stats(RunInfo(runtime_s=-1.0), Iteration(10), Iteration(20))


def test_huge_step_time() -> None:
    """``time 1e300ms`` is finite: the ETA overflowed timedelta (metrics.py finish_at), and its
    float32 copy is inf, so a restart subtracted inf from the training time (-inf)."""
    huge = [Iteration(i, time_ms=1e300) for i in range(10, 60, 10)]
    _stats(*huge)
    _stats(*huge, Iteration(50, time_ms=10.0))


def test_eta_past_year_9999() -> None:
    _stats(*STEPS, now=datetime(9999, 12, 31, 23, 59))


def test_negative_eval_iteration() -> None:
    """An Eval at -1 made "iterations done" -1 (metrics._iterations_done)."""
    _stats(Eval(-1, val_loss=1.0))


def test_restart_float32_residue() -> None:
    """Times are subtracted as float32 copies on a restart: 20971519 ms comes back as 20971520."""
    _stats(Iteration(0, time_ms=0.5), Iteration(1, time_ms=20971519.0), Iteration(1, time_ms=0.0))
    _stats(Iteration(0, time_ms=20971519.0), Iteration(0, time_ms=0.0))


def test_json_export_of_a_huge_integer() -> None:
    """orjson refuses integers beyond 64 bits; the export falls back to exact stdlib JSON."""
    agg = RunAggregator()
    agg.add_all([RunInfo(batch_size=2**31, grad_accum=2**31, block_size=2**31), *STEPS])
    stats = agg.stats(NOW)
    assert stats.tokens_per_iter == 2**93
    assert strict_json(render(snapshot_of(stats), "json"))["runs"][0]["tokens_per_iter"] == 2**93


NANO = "".join(f"iter {i}: loss 2.0, time 100.00ms, mfu 10.00%\n" for i in range(1, 41))


def test_copytruncate_that_grew_past_the_old_offset(tmp_path: Path) -> None:
    """ingest/source.py: a log truncated in place and grown past the old read offset
    before the next read looked merely appended to; the reader went on from
    the middle of a line and lost the lines before it."""
    path = tmp_path / "train.log"
    path.write_text(NANO[: len(NANO) // 2])
    source = LogSource(path)
    source.refresh()
    seen = source.agg.stats().iter
    with open(path, "r+") as handle:  # copytruncate, then the writer goes on
        handle.truncate(0)
    with open(path, "a") as handle:
        handle.write("".join(f"iter {i}: loss 2.0, time 100.00ms, mfu 10.00%\n" for i in range(21, 61)))
    source.refresh()
    stats = source.agg.stats()
    assert seen == 20
    assert stats.logged_iters == 20 + 40 and stats.segments == 1


def test_deleted_and_recreated_on_the_same_inode(tmp_path: Path) -> None:
    """ingest/source.py: the same (device, inode) after delete + create (inodes are reused)."""
    path = tmp_path / "train.log"
    path.write_text(NANO[:200])
    source = LogSource(path)
    source.refresh()
    first = source.agg.stats().logged_iters
    inode = path.stat().st_ino
    path.unlink()
    with open(path, "w") as handle:
        handle.write("".join(f"iter {i}: loss 2.0, time 100.00ms, mfu 10.00%\n" for i in range(100, 140)))
    if path.stat().st_ino != inode:
        pytest.skip("the filesystem did not reuse the inode")
    source.refresh()
    stats = source.agg.stats()
    assert stats.logged_iters == first + 40 and stats.iter == 139


def test_log_starting_with_a_hole_of_nuls(tmp_path: Path) -> None:
    """ingest/source.py: copytruncate under a writer without O_APPEND leaves NULs where the
    old lines were; the first line after them was lost, and a fresh reader
    called the whole file binary."""
    path = tmp_path / "train.log"
    path.write_bytes(b"\0" * 5000 + NANO.encode())
    source = LogSource(path)
    source.refresh()
    assert source.problem is None
    assert source.agg.stats().logged_iters == 40


async def test_app_first_snapshot_without_runs(tmp_path: Path) -> None:
    """tui/cells.py: a snapshot with no runs yet (the watcher reads small files
    first, so its first one is often a notes.txt) raised KeyError in
    ``cells.fit`` and took the app down. Then a run with one logged iteration
    (or a flat loss) made plotext divide by zero in the detail chart."""
    from trainwatch.core.names import Names
    from trainwatch.core.rows import Snapshot
    from trainwatch.ingest.publish import build
    from trainwatch.tui.app import SnapshotReady, TrainwatchApp
    from trainwatch.tui.runs_table import RunsTable

    class Source:
        mode, network_paths = "inotify", []

        def __init__(self, publish: object) -> None:
            self.publish = publish

        def start(self) -> None:
            self.publish(Snapshot(NOW, (), ((str(tmp_path / "notes.txt"), "unrecognised format"),)))  # type: ignore[operator]

        def stop(self) -> None: ...
        def refresh_now(self) -> None: ...
        def set_target(self, target: int | None) -> None: ...

    path = tmp_path / "train.log"
    path.write_text("iter 1: loss 2.0, time 100.00ms, mfu 10.00%\n")
    source = LogSource(path)
    source.refresh()
    app = TrainwatchApp(Source, clock=lambda: NOW)  # type: ignore[arg-type]
    async with app.run_test(size=(160, 40)) as pilot:
        for _ in range(3):
            await pilot.pause()
        app.post_message(SnapshotReady(build([source], Names(), NOW)))
        for _ in range(3):
            await pilot.pause()
        assert app.screen.query_one(RunsTable).row_count == 1
        await pilot.press("enter")
        for _ in range(3):
            await pilot.pause()
        assert "train" in app.export_screenshot()
    assert app.return_code in (None, 0)


def test_a_parser_bug_is_logged_not_hidden(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The line parsers' safety net keeps the monitor alive on any line, but
    a bug it catches reaches the ``trainwatch.parsers`` logger with its
    traceback (the first few times per format), instead of vanishing."""
    from trainwatch.parsers import base, nanogpt_stdout

    monkeypatch.setattr(base, "_logged", base.Counter())

    def broken(self: object, line: str, out: list[object]) -> None:
        raise RuntimeError("a bug in the parser")

    monkeypatch.setattr(nanogpt_stdout.NanoGPTStdoutParser, "_feed", broken)
    parser = nanogpt_stdout.SPEC.new_line_parser()
    with caplog.at_level("WARNING", logger="trainwatch.parsers"):
        for k in range(20):
            assert list(parser.feed(f"step {k}: train loss 2.0, val loss 2.1")) == []
    failures = [r for r in caplog.records if r.name == "trainwatch.parsers"]
    assert len(failures) == base.MAX_LOGGED_ERRORS
    assert "nanogpt_stdout" in failures[0].getMessage() and "step 0" in failures[0].getMessage()
    assert failures[0].exc_info is not None and "a bug in the parser" in str(failures[0].exc_info[1])
