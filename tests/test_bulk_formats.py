"""Every bulk line parser gives the records and figures of its per-line path, to the bit.

For each format with ``feed_text`` (llm.c's console and main.log,
build-nanogpt, torchtitan, Megatron, LLaMA-Factory; nanoGPT is
``test_bulk_load.py``'s), the reference is ``feed`` of each line in turn
and the aggregator fed record by record. Checked on every corpus log of the
format (at three chunk sizes: boundaries anywhere) and on line streams the
tests write in each format's grammar: long runs of the per-step line with
odd values now and then (NaN, negative, commas, another target, another
rank), the format's other lines between them (evals, checkpoints, config,
crashes, ends, garbage), restarts, and cuts anywhere (mid-line, between
``\\r`` and ``\\n``).
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bulkcheck import PerLineSource, assert_same, corpus_logs, expanded, feed_bulk, feed_per_line, load_both, text_of
from hypothesis import given, settings
from hypothesis import strategies as st

from trainwatch import parsers
from trainwatch.core.records import IterationColumns
from trainwatch.ingest import source
from trainwatch.ingest.source import LogSource

FORMATS = (
    "llmc_stdout",
    "llmc_main_log",
    "buildnanogpt_logtxt",
    "torchtitan_stdout",
    "megatron_stdout",
    "llamafactory_jsonl",
)
FAST = settings(max_examples=60, deadline=None, derandomize=True, database=None)
LOGS = corpus_logs(*FORMATS)


def spec(name: str) -> parsers.ParserSpec:
    return next(s for s in parsers.PARSERS if s.format == name)


# ------------------------------------------------------------------ corpus


def test_the_corpus_has_logs_of_each_format() -> None:
    if not LOGS:
        pytest.skip("../shared/corpus not present")
    seen = {parsers.detect_head(p.read_bytes()[: parsers.SNIFF_BYTES_MORE], p.name).format for p in LOGS}  # type: ignore[union-attr]
    assert seen == set(FORMATS)


@pytest.mark.parametrize("path", LOGS, ids=[p.name for p in LOGS])
@pytest.mark.parametrize("chunk", [source.CHUNK, 4096, 997])
def test_corpus_bulk_equals_per_line(path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "CHUNK", chunk)  # chunk boundaries all over the file
    bulk, reference = load_both(path)
    assert bulk.format in FORMATS
    assert_same(bulk.agg, reference.agg)


@pytest.mark.parametrize("path", LOGS, ids=[p.name for p in LOGS])
def test_corpus_records_equal_per_line(path: Path) -> None:
    """``feed_text`` gives ``feed``'s records, in order, with runs of plain lines as columns."""
    text = text_of(path)
    new = parsers.detect_head(path.read_bytes()[: parsers.SNIFF_BYTES_MORE], path.name).new_line_parser  # type: ignore[union-attr]
    records = feed_bulk(new, text, cuts=range(0, len(text), 5000))
    assert repr(expanded(records)) == repr(feed_per_line(new, text))


# ---------------------------------------------------- each format's grammar


@dataclass(frozen=True)
class Grammar:
    """How a format's log is written: its per-step line and its other lines."""

    format: str
    #: The per-step line at a step; ``odd`` (one in ~15) asks for strange values.
    plain: Callable[[int, random.Random, bool], str]
    #: Other lines (``{step}`` is the current step).
    others: tuple[str, ...]
    headers: tuple[str, ...] = ("",)


def _num(
    r: random.Random, odd: bool, oddities: tuple[str, ...] = ("nan", "inf", "-1.5", "1e-05", "abc", "9" * 400)
) -> str:
    return r.choice(oddities) if odd and r.random() < 0.5 else f"{r.uniform(0, 20):.4f}"


def _llmc(step: int, r: random.Random, odd: bool) -> str:
    total = "300" if not odd or r.random() < 0.7 else "301"
    ms = _num(r, odd, ("-1.00", "nan", "abc")) if odd else f"{r.uniform(100, 200):.2f}"
    mfu = r.choice(["-100.0", "0.0", "nan", "31.9"]) if odd else f"{r.uniform(20, 40):.1f}"
    z = r.choice(["+nanz", "-0.39z", "+1.20z"])
    return (
        f"step {step:4d}/{total} | loss {_num(r, odd)} ({z})| norm {_num(r, odd)} ({z})| lr {r.uniform(0, 1e-3):.2e}"
        f" | {ms} ms | {mfu}% bf16 MFU | {r.randint(1000, 200000)} tok/s"
    )


def _llmc_main(step: int, r: random.Random, odd: bool) -> str:
    return f"s:{step} trl:{_num(r, odd)} lr:{r.uniform(0, 1e-3):.6e} norm:{_num(r, odd)}"


def _buildnanogpt(step: int, r: random.Random, odd: bool) -> str:
    return f"{step} train {_num(r, odd)}"


_TITAN_TIME = "2026-04-27 16:{:02d}:{:02d},{:03d}"


def _titan(step: int, r: random.Random, odd: bool) -> str:
    when = _TITAN_TIME.format(r.randint(0, 59), r.randint(0, 59), r.randint(0, 999))
    if odd and r.random() < 0.2:
        when = "2026-13-27 16:00:00,000"  # no such month
    rank = "[rank1]:" if odd and r.random() < 0.3 else "[rank0]:"
    tps = r.choice(["1,601", "16", "nan", "3,235.5"]) if odd else f"{r.randint(100, 9000):,}"
    mfu = r.choice(["nan", "inf", "15224.11", "0.00"]) if odd else f"{r.uniform(1, 50):.2f}"
    colour = r.random() < 0.8
    c = (lambda code: f"\x1b[{code}m") if colour else (lambda code: "")
    return (
        f"{rank}[titan] {when} - root - INFO - {c('31')}step: {step:2d}  {c('32')}loss: {_num(r, odd):>8}  "
        f"{c('38;2;180;60;0')}grad_norm: {_num(r, odd):>7}  {c('38;2;54;234;195')}memory: 23.77GiB(75.82%)  "
        f"{c('34')}tps: {tps}  {c('36')}tflops: 9.93  {c('35')}mfu: {mfu}%{c('39')}"
    )


def _megatron(step: int, r: random.Random, odd: bool) -> str:
    if step // 200 % 2 == 0:  # Megatron-LM core, launcher prefix and time
        when = f"2026-04-15 11:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999999):06d}"
        nan = "   1" if odd and r.random() < 0.2 else "   0"
        total = " 501" if odd and r.random() < 0.3 else " 500"
        return (
            f"9: [default3]: [{when}] iteration {step:8d}/{total} | consumed samples: {80 * step:12d} | "
            f"elapsed time per iteration (ms): {_num(r, odd)} | throughput per GPU (TFLOP/s/GPU): 11.9 | "
            f"learning rate: 6.000000E-06 | global batch size:    80 | lm loss: {_num(r, odd)} | loss scale: 1.0 | "
            f"grad norm: {_num(r, odd)} | number of skipped iterations:   0 | number of nan iterations: {nan} |"
        )
    batch = "   32" if odd and r.random() < 0.3 else "   16"
    return (
        f" iteration {step:8d}/     500 | consumed samples: {16 * step:12d} | consumed tokens: {32768 * step:12d} | "
        f"elapsed time per iteration (ms): {_num(r, odd)} | learning rate: 2.000E-07 | global batch size: {batch} | "
        f"lm loss: {_num(r, odd)} | loss scale: 1.0 | grad norm: {_num(r, odd)} | num zeros: 0.0 | "
        f"actual seqlen:  2048 | number of skipped iterations:   0 | number of nan iterations:   0 | "
        f"samples per second: 1.084 | tokens per gpu per second (tgs): {_num(r, odd)} | TFLOPs: 2.5 |"
    )


def _llamafactory(step: int, r: random.Random, odd: bool) -> str:
    loss = r.choice(["NaN", "1.5", "2", "1e400", '"x"']) if odd else f"{r.uniform(0, 3):.4f}"
    rate = r.choice(['"1,234.5"', "0", "-3", "null"]) if odd else f"{r.uniform(100, 900):.2f}"
    total = "8713" if odd and r.random() < 0.3 else "8712"
    secs = step * 42 if not (odd and r.random() < 0.3) else step
    elapsed = f"{secs // 3600}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    lr_key = "lr" if step % 2 else "learning_rate"
    return (
        f'{{"current_steps": {step}, "total_steps": {total}, "loss": {loss}, "{lr_key}": 4.99e-05, '
        f'"epoch": 0.01, "percentage": 0.17, "elapsed_time": "{elapsed}", "remaining_time": "4 days, 6:44:42", '
        f'"throughput": {rate}, "total_tokens": {step * 1000}}}'
    )


_SLURM = "slurmstepd: error: *** JOB 1 ON g1 CANCELLED AT 2024-01-01T00:00:00 DUE TO TIME LIMIT ***"
_COMMON = ("", "   ", "random print", "Traceback (most recent call last):", "RuntimeError: boom", _SLURM)

GRAMMARS = {
    g.format: g
    for g in (
        Grammar(
            "llmc_stdout",
            _llmc,
            (
                *_COMMON,
                "val loss 3.5",
                "HellaSwag: 10/100 = 0.25",
                "evaluating HellaSwag: 0/10evaluating HellaSwag: 10/10\r",
                "generating:",
                "---",
                "a generated sample",
                "Writing checkpoint at step {step}",
                "Writing model to model.bin",
                "total average iteration time: 100.0 ms",
                "Error: Token out of vocabulary",
                "step {step}/300 | loss 3.3 (+0.47z)| norm 0.2 (-0.39z)| lError: boom",
                "step {step}/74: train loss 4.36 norm 1.2 lr 1.00e-04 (80.64 ms, 6350 tok/s)",
                "+-----------------------+-------+",
                "| max_steps             | 300   |",
                "| train_num_batches     | 299   |",
                "batch_size B=4 * seq_len T=64 * num_processes=1 and total_batch_size=256",
                "=> setting grad_accum_steps=1",
            ),
            (
                "",
                "| max_steps | 300 |",
                "step    1/300 | loss 1.0 (+nanz)| norm 1.0 (+nanz)| lr 1e-4 | 5.0 ms | 1.0% bf16 MFU | 9 tok/s",
            ),
        ),
        Grammar(
            "llmc_main_log",
            _llmc_main,
            ("", "junk", "s:{step} tel:3.2", "s:{step} eval:0.25", "s:{step} trl:abc lr:1 norm:1", "s:{step} trl:1.0"),
            ("s:0 tel:11.0",),
        ),
        Grammar(
            "buildnanogpt_logtxt",
            _buildnanogpt,
            (
                "",
                "{step} val 3.2",
                "{step} hella 0.25",
                "{step} export model.pt",
                "{step} evaluate ppl 93.8 loss 4.54 tok 5169152 sec 12.3",
                "# resumed at 2026-05-30T00:35:08 from step 5",
                "{step}  train 1.0",
                " {step} train 1.0",
                "{step} train 1.0 extra",
                "99999999999999999999 train 1.0",
            ),
            ("0 val 11.0\n0 hella 0.25\n0 train 11.0",),
        ),
        Grammar(
            "torchtitan_stdout",
            _titan,
            (
                *_COMMON,
                "[rank0]:[titan] 2026-04-27 16:45:15,717 - root - INFO - \x1b[33mvalidate step: {step}  "
                "\x1b[32mloss: 12.2336  \x1b[34mtps: 7,228\x1b[39m",
                "[rank0]:[titan] 2026-04-27 16:57:24,601 - root - INFO - [GC] Performing periodic GC collection",
                "[rank0]:[titan] 2026-04-27 16:57:24,601 - root - INFO - Training completed",
                "[rank0]:[titan] 2026-04-27 16:57:24,601 - root - INFO - Training starts at step 1",
                "[rank0]:[titan] 2026-04-27 16:57:24,601 - root - INFO - Saving a full checkpoint at last step, "
                "step {step}",
                "[rank0]:[titan] 2026-04-27 16:57:24,601 - root - INFO - Building llama3 debugmodel with {",
                '[rank0]:  "dim": 256,',
                "[rank0]:}",
                "[rank0]:[titan] 2026-04-27 16:43:50,722 - httpx - INFO - HTTP Request: GET https://x",
            ),
            (
                "[rank0]:[titan] 2026-04-27 16:40:00,000 - root - INFO - Trainer is initialized with local batch "
                "size 8, global batch size 64, gradient accumulation steps 1, sequence length 2048, total steps 300",
            ),
        ),
        Grammar(
            "megatron_stdout",
            _megatron,
            (
                *_COMMON,
                "steps: {step} loss: 9.2698 iter time (s): 17.531 samples/sec: 0.913",
                " validation loss at iteration {step} | lm loss value: 6.335348E+00 | lm loss PPL: 5.6E+02 | ",
                "------------------------ arguments ------------------------",
                "  train_iters ..................................... 500",
                "-------------------- end of arguments ---------------------",
                "[after training is done] datetime: 2025-12-22 22:04:38",
                "[before the start of training step] datetime: 2025-12-22 20:00:00",
                "  successfully saved checkpoint at iteration {step} to ckpt",
                " iteration {step}/ 500 | consumed samples: 16 | lm loss: 1.2",
            ),
            ("------------------------ arguments ------------------------",),
        ),
        Grammar(
            "llamafactory_jsonl",
            _llamafactory,
            (
                "",
                "not json",
                '{"current_steps": {step}, "total_steps": 8712, "eval_loss": 1.5, "epoch": 0.1, '
                '"percentage": 1.0, "elapsed_time": "0:10:00", "remaining_time": "1:00:00"}',
                '{"current_steps": {step}, "total_steps": 8712, "epoch": 0.1, "percentage": 1.0, '
                '"elapsed_time": "0:10:00", "remaining_time": "1:00:00"}',
                '{"current_steps": {step}, "total_steps": 8712, "loss": 1.5, "elapsed_time": "1 day, 0:10:00"}',
                '{"current_steps": {step}, "total_steps": 8712, "loss": 1.5, "elapsed_t',
            ),
            ('{"current_steps": 0, "total_steps": 8712, "percentage": 0.0, "elapsed_time": "0:00:00"}',),
        ),
    )
}
RESET = "<back>"


def lines_of(grammar: Grammar, header: str, ops: list[Any], seed: int) -> list[str]:
    """A log: runs of per-step lines with steps going on (and back), other lines between."""
    r = random.Random(seed)
    lines, step = [header] if header else [], 1
    for op in ops:
        if op == RESET:
            step = max(1, step - r.randint(1, 40))
            continue
        if isinstance(op, int):
            lines.append(grammar.others[op % len(grammar.others)].replace("{step}", str(step)))
            continue
        for _ in range(op[0]):
            lines.append(grammar.plain(step, r, r.random() < op[1]))
            step += r.choice([1, 1, 1, 1, 2, 10, 0])  # (0: the same step again)
    return "\n".join(line for part in lines for line in part.split("\n")).split("\n")


_ops = st.lists(
    st.one_of(
        st.tuples(st.integers(1, 12), st.sampled_from([0.0, 0.07])),
        st.tuples(st.integers(8, 80), st.sampled_from([0.0, 0.0, 0.02])),
        st.integers(0, 50),
        st.just(RESET),
    ),
    max_size=25,
)


@pytest.mark.parametrize("name", FORMATS)
@FAST
@given(ops=_ops, header=st.integers(0, 5), seed=st.integers(0, 2**32 - 1), crlf=st.booleans())
def test_line_streams_bulk_equals_per_line(name: str, ops: list[Any], header: int, seed: int, crlf: bool) -> None:
    grammar = GRAMMARS[name]
    lines = lines_of(grammar, grammar.headers[header % len(grammar.headers)], ops, seed)
    new = spec(name).new_line_parser
    text = "\n".join(lines) + "\n"
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(len(text)), min(len(text), rng.randint(0, 10))))
    assert repr(expanded(feed_bulk(new, text, cuts))) == repr(feed_per_line(new, text))
    # The same through LogSource: bytes cut anywhere (mid-line, mid-character,
    # between \r and \n), the aggregator fed records or columns. (The format is
    # sniffed on the whole text first: on a few bytes a sniffer may say another.)
    data = ("\r\n" if crlf else "\n").join(lines).encode() + b"\n"
    reference, bulk = PerLineSource(Path("run.log")), LogSource(Path("run.log"))
    for log in (reference, bulk):
        log._detect(io.BytesIO(data))
        log.spec = spec(name)
        log._line_parser = log._make_line_parser(log.spec)
        log._feed_text = getattr(log._line_parser, "feed_text", None)
    reference.feed_bytes(data, "id", 0)
    offset = 0
    for end in [*sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 12)))), len(data)]:
        bulk.feed_bytes(data[offset:end], "id", offset)
        offset = end
    reference.flush()
    bulk.flush()
    assert_same(bulk.agg, reference.agg)


@pytest.mark.parametrize("name", FORMATS)
def test_long_runs_come_as_columns(name: str) -> None:
    """The bulk path is taken: a long run of ordinary per-step lines is one ``IterationColumns``."""
    grammar = GRAMMARS[name]
    r = random.Random(1)
    plain = [grammar.plain(step, r, False) for step in range(1, 101)]
    text = "\n".join([grammar.headers[0], *plain] if grammar.headers[0] else plain) + "\n"
    new = spec(name).new_line_parser
    records = feed_bulk(new, text)
    columns = [r for r in records if isinstance(r, IterationColumns)]
    assert columns and sum(map(len, columns)) >= 99, [type(r).__name__ for r in records]
    assert repr(expanded(records)) == repr(feed_per_line(new, text))
