"""nanochat: karpathy/nanochat's base/mid/SFT console output (speedrun.log, wandb's output.log)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.ingest.source import LogSource
from trainwatch.parsers import SNIFF_BYTES, SNIFF_BYTES_MORE, by_format, detect, detect_head, nanochat, nanochat_steps

NOW = datetime(2030, 1, 1)
INFO = "\x1b[32m\x1b[1mINFO\x1b[0m"


def _feed(lines: list[str], flush: bool = True) -> list[Record]:
    parser = nanochat.NanochatParser()
    records = [record for line in lines for record in parser.feed(line)]
    return records + parser.flush() if flush else records


def _live(source: LogSource) -> RunStats:
    """The stats 5 s after the file's last change, as a live look would see them."""
    return source.agg.stats(now=source.agg.observed[-1] + timedelta(seconds=5))


def _stats(records: tuple[Record, ...] | list[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def _info(records: tuple[Record, ...] | list[Record]) -> dict[str, object]:
    """RunInfo fields merged the way the aggregator merges them (later wins)."""
    merged: dict[str, object] = {}
    for record in records:
        if isinstance(record, RunInfo):
            merged.update({k: v for k in RunInfo.__slots__ if (v := getattr(record, k)) is not None})
    return merged


def _its(records: list[Record]) -> list[Iteration]:
    return [r for r in records if isinstance(r, Iteration)]


def _log(stamp: str, name: str, message: str) -> str:
    return f"2025-10-13 {stamp},000 - nanochat.{name} - {INFO} - {message}"


# October 2025 base_train.py: "mfu", no epoch, "eta" from step 11 in some versions.
BASE_OLD = [
    "Autodetected device type: cuda",
    _log("10:00:00", "common", "Distributed world size: 8"),
    "num_layers: 20",
    "model_dim: 1280",
    "num_heads: 10",
    "Tokens / micro-batch / rank: 32 x 2048 = 65,536",
    "Tokens / micro-batch: 524,288",
    "Total batch size 524,288 => gradient accumulation steps: 1",
    "Number of parameters: 560,988,160",
    "Calculated number of iterations from target data:param ratio: 4",
    "Step 00000 | Validation bpb: 3.3015",
    "step 00000/00004 (0.00%) | loss: 11.090355 | lrm: 1.00 | dt: 30000.00ms | tok/sec: 17,476 | mfu: 1.53 | "
    "total time: 0.00m",
    "step 00001/00004 (25.00%) | loss: 10.500000 | lrm: 1.00 | dt: 500.00ms | tok/sec: 1,048,576 | mfu: 48.00 | "
    "total time: 0.00m",
    "step 00002/00004 (50.00%) | loss: 9.000000 | lrm: 1.00 | dt: 510.00ms | tok/sec: 1,028,015 | mfu: 47.06 | "
    "total time: 0.00m",
    "step 00003/00004 (75.00%) | loss: 8.000000 | lrm: 0.50 | dt: 490.00ms | tok/sec: 1,069,975 | mfu: 48.98 | "
    "total time: 0.00m",
    "Step 00004 | Validation bpb: 1.2000",
    "Step 00004 | CORE metric: 0.1163",
    "<|bos|>The capital of France is Paris.",
    _log(
        "10:05:00",
        "checkpoint_manager",
        "Saved model file to: /root/.cache/nanochat/base_checkpoints/d20/model_000004.pt",
    ),
    _log(
        "10:05:01",
        "checkpoint_manager",
        "Saved optimizer file to: /root/.cache/nanochat/base_checkpoints/d20/optim_000004.pt",
    ),
    "Peak memory usage: 75422.02MiB",
    "Total training time: 0.03m",
    "Minimum validation bpb: 1.2000",
]


def test_base_phase_old_format() -> None:
    records = _feed(BASE_OLD)
    its = _its(records)
    assert [it.iter for it in its] == [0, 1, 2, 3]  # 0-based, as printed
    assert its[1] == Iteration(iter=1, loss=10.5, time_ms=500.0, mfu_pct=48.0, tokens_per_sec=1048576.0)
    evals = [r for r in records if isinstance(r, Eval)]
    # bpb is a metric, not a loss; the CORE line of step 4 joins its bpb.
    assert evals[-1] == Eval(iter=4, metrics={"val_bpb": 1.2, "core_metric": 0.1163})
    assert all(e.val_loss is None for e in evals)
    assert [c.iter for c in records if isinstance(c, Checkpoint)] == [4]  # the model file, not the optimizer's
    info = _info(records)
    assert (info["n_layer"], info["n_embd"], info["n_head"]) == (20, 1280, 10)
    assert (info["world_size"], info["batch_size"], info["block_size"]) == (8, 32, 2048)
    assert (info["grad_accum_per_gpu"], info["tokens_per_iter"], info["params"]) == (1, 524288, 560988160)
    assert (info["name"], info["tokens_per_sec_scope"], info["eval_timing"]) == (
        "nanochat d20 base",
        "total",
        "excluded",
    )
    outcome = records[-1]
    assert isinstance(outcome, Outcome) and outcome.kind == "finished"
    assert outcome.wall_time == datetime(2025, 10, 13, 10, 5, 1)  # the last logger line before the end
    st = _stats(records)
    # The loop's last pass only evaluates: its "Step 00004" eval makes 4 of 4.
    assert (st.iter, st.target, st.status, st.loss, st.val_loss) == (4, 4, "finished", 8.0, None)
    assert st.tokens_per_iter == 524288  # 32 × 1 per GPU × 8 GPUs × 2048, and tok/sec × dt agree


def test_base_phase_newest_format_fields() -> None:
    lines = [
        "GPU: NVIDIA H100 80GB HBM3 | Peak FLOPS (BF16): 9.89e+14",
        "COMPUTE_DTYPE: torch.bfloat16 (autodetected)",
        "Model config:",
        "{",
        '  "sequence_len": 2048,',
        '  "vocab_size": 32768,',
        '  "n_layer": 24,',
        '  "n_head": 12,',
        '  "n_embd": 1536,',
        '  "window_pattern": "SSSL"',
        "}",
        "Parameter counts:",
        "wte                     : 50,331,648",
        "total                   : 1,384,124,976",
        "step 00011/05742 (0.19%) | loss: 7.763521 | lrm: 1.00 | dt: 49206.85ms | tok/sec: 21,309 | bf16_mfu: 37.10 | "
        "epoch: 1 pq: 3 rg: 12 | total time: 0.82m | eta: 4700.1m",
    ]
    records = _feed(lines)
    info = _info(records)
    assert (info["gpu"], info["mfu_peak_tflops"], info["dtype"]) == ("NVIDIA H100 80GB HBM3", 989.0, "bfloat16")
    assert (info["n_layer"], info["n_head"], info["n_embd"], info["block_size"]) == (24, 12, 1536, 2048)
    assert (info["params"], info["target"], info["name"]) == (1384124976, 5742, "nanochat d24 base")
    assert _its(records) == [Iteration(iter=11, loss=7.763521, time_ms=49206.85, mfu_pct=37.10, tokens_per_sec=21309.0)]


def test_crlf_ansi_and_grad_norm_through_the_tailer(tmp_path: Path) -> None:
    """A fork's grad norm field, CRLF endings, ESC[A glued before a step line, read as the app reads."""
    lines = [
        "\x1b[2mResolved \x1b[1m91 packages\x1b[0m \x1b[2min 2ms\x1b[0m\x1b[0m",
        "Reset report and wrote header to /home/u/.cache/nanochat/report/header.md",
        "step 00000/21400 (0.00%) | loss: 11.090355 | grad norm: 0.4282 | lrm: 1.00 | dt: 14000.00ms | "
        "tok/sec: 37,449 | mfu: 12.00 | total time: 0.00m",
        "\x1b[A\x1b[A\x1b[Astep 00001/21400 (0.00%) | loss: 10.000000 | grad norm: 4.3408 | lrm: 1.00 | "
        "dt: 13798.32ms | tok/sec: 37,996 | mfu: 12.20 | total time: 0.00m",
    ]
    path = tmp_path / "speedrun.log"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    source = LogSource(path)
    source.refresh()
    source.flush()
    assert source.format == "nanochat"
    st = _live(source)
    assert (st.iter, st.target, st.loss, st.status) == (1, 21400, 10.0, "running")
    assert st.mfu_now_pct == 12.2


# A speedrun.log in the shape of the old pipeline: a failed launch, then base,
# base eval, mid (no total) and SFT (no total), each phase restarting its steps.
def _chat_steps(first: int, last: int, total: int, loss: float) -> list[str]:
    return [
        f"step {i:05d} ({100 * i / total:.2f}%) | loss: {loss:.6f} | lrm: 1.00 | dt: 480.00ms | tok/sec: 1,092,266 | "
        f"mfu: 48.00 | total time: 0.01m"
        for i in range(first, last + 1)
    ]


SPEEDRUN = [
    "Traceback (most recent call last):",
    '  File "/home/u/nanochat/scripts/base_train.py", line 20, in <module>',
    "torch.AcceleratorError: CUDA error: invalid device ordinal",
    "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ",
    "scripts.base_train FAILED",
    *BASE_OLD[1:],
    "CORE metric: 0.2219",  # base_eval.py's own line: no step, not read
    _log("10:06:00", "checkpoint_manager", "Loading model from /root/.cache/nanochat/base_checkpoints/d20 with step 4"),
    "Step 00000 | Validation bpb: 0.6934",
    *_chat_steps(1, 5, 6, 1.3),
    "Step 00006 | Validation bpb: 0.4158",
    _log(
        "10:09:00",
        "checkpoint_manager",
        "Saved model file to: /root/.cache/nanochat/mid_checkpoints/d20/model_000006.pt",
    ),
    "Peak memory usage: 75422.02MiB",
    "Total training time: 0.04m",
    "Minimum validation bpb: 0.4158",
    _log("10:10:00", "checkpoint_manager", "Loading model from /root/.cache/nanochat/mid_checkpoints/d20 with step 6"),
    "\r\x1b[KRank 1 | 0/1 (0.00%)\r\x1b[KRank 2 | 1/1 (100.00%)",
    "Step 00000 | Validation bpb: 0.4100",
    *_chat_steps(1, 3, 10, 1.0),
]


def test_phases_of_a_speedrun() -> None:
    records = _feed(SPEEDRUN)
    # The failed launch trained nothing and a later phase trains: no failure.
    assert [o.kind for o in records if isinstance(o, Outcome)] == ["finished", "finished"]
    names = [r.name for r in records if isinstance(r, RunInfo) and r.name]
    assert names == ["nanochat d20 base", "nanochat d20 mid", "nanochat d20 sft"]
    st = _stats(records)
    # Now in SFT at step 3 of about 10 (derived from "(30.00%)").
    assert (st.iter, st.target, st.status, st.loss, st.segments) == (3, 10, "running", 1.0, 3)
    assert st.log_name == "nanochat d20 sft"
    mid = _stats(
        records[: next(i for i, r in enumerate(records) if isinstance(r, RunInfo) and r.name == "nanochat d20 sft")]
    )
    # The mid phase ended at step 6 (its last eval): its derived target becomes that.
    assert (mid.iter, mid.target, mid.status) == (6, 6, "finished")


def test_mid_and_sft_targets_are_derived_from_the_percentage() -> None:
    records = _feed(_chat_steps(1, 3, 400, 1.0))
    # 1 / 0.25 % -> 400 steps; 2 / 0.50 % and 3 / 0.75 % say the same.
    assert [r.target for r in records if isinstance(r, RunInfo) and r.target] == [400]
    near_end = _feed(
        ["step 00399 (99.90%) | loss: 1.0 | lrm: 0.01 | dt: 1.0ms | tok/sec: 1 | mfu: 1.0 | total time: 1m"]
    )
    assert _info(near_end)["target"] == 400  # kept above the step until the data runs out
    done = _feed(["step 00402 (100.00%) | loss: 1.0 | lrm: 0.01 | dt: 1.0ms | tok/sec: 1 | mfu: 1.0 | total time: 1m"])
    assert _info(done)["target"] == 402


def test_old_chat_sft_lines() -> None:
    lines = [
        "Target examples per step: 32",
        "Step 00000 | Validation loss: 1.234567",
        "Step 00000/00003 | Training loss: 1.500000| lrm: 1.000000| num_tokens: 12,345",
        "Step 00001/00003 | Training loss: 1.400000| lrm: 0.500000| num_tokens: 12,000",
        "Step 00002 | Validation loss: 1.100000",
        "Step 00002 | mmlu_acc: 0.312500, arc_easy_acc: 0.406250",
        "✅ Saved model checkpoint to /root/.cache/nanochat/chatsft_checkpoints/d20",
    ]
    records = _feed(lines)
    assert [(it.iter, it.loss) for it in _its(records)] == [(0, 1.5), (1, 1.4)]
    evals = [r for r in records if isinstance(r, Eval)]
    assert evals[-1] == Eval(iter=2, val_loss=1.1, metrics={"mmlu_acc": 0.3125, "arc_easy_acc": 0.40625})
    st = _stats(records)
    assert (st.status, st.val_loss, st.target, st.log_name) == ("finished", 1.1, 3, "nanochat sft")


def test_a_phase_that_starts_at_step_0_keeps_its_first_eval() -> None:
    """A phase's eval of step 0 comes before its first step, which sends the
    aggregator back to step 0 (dropping that eval): it is sent again."""
    sft = [
        "Step 00000 | Validation loss: 1.234567",
        "Step 00000/00003 | Training loss: 1.500000| lrm: 1.000000| num_tokens: 12,345",
        "Step 00001/00003 | Training loss: 1.400000| lrm: 0.500000| num_tokens: 12,000",
    ]
    st = _stats(_feed([*BASE_OLD, *sft]))
    assert (st.iter, st.val_loss, st.segments, st.log_name, st.status) == (
        1,
        1.234567,
        2,
        "nanochat d20 sft",
        "running",
    )
    assert st.logged_iters == 2  # the base phase is gone


def test_failures() -> None:
    crash = [
        "Traceback (most recent call last):",
        "torch.OutOfMemoryError: CUDA out of memory.",
    ]
    step = "step 00005/00100 (5.00%) | loss: 5.000000 | lrm: 1.00 | dt: 500.00ms | mfu: 1.00 | total time: 1m"
    # Inside a phase: at once.
    records = _feed([step, *crash], flush=False)
    assert _stats(records).status == "failed"
    # A launch that trains nothing: held until the end of input ...
    assert _feed(crash, flush=False) == []
    assert [r.message for r in _feed(crash) if isinstance(r, Outcome)][
        -1
    ] == "torch.OutOfMemoryError: CUDA out of memory."
    # ... and dropped when a later launch trains.
    assert not any(isinstance(r, Outcome) for r in _feed([*crash, step]))


def test_cut_and_strange_lines() -> None:
    assert _its(_feed(["step 00011/05742 (0.19%) | loss: 7.76"])) == []  # cut in its loss
    assert _its(_feed(["step 00011/05742 (0.19%) | loss: 7.763521 | lrm: 1.00 | dt: 4920"])) == [
        Iteration(iter=11, loss=7.763521)  # dt cut: unknown, loss whole
    ]
    for line in [
        "step {step:05d}/{num_iterations:05d} ({pct_done:.2f}%) | loss: {debiased_smooth_loss:.6f} |",
        "step 00001 (nan%) | loss: 1.0 | dt: -5ms | x",
        "step 00001 (0.00%) | loss: nan | dt: infms | x",
        "Step 3/100 | Example step 0 | Pass 0 | loss: 0.1 | Average reward: 0.5",
        "Step 00010 | ChatCORE: x | ChatCORE_cat: 1e309",
        "step " + "9" * 5000 + "/1 (1.00%) | loss: 1 | x",
    ]:
        _feed([line])  # never raises


def test_detection() -> None:
    head = "Reset report and wrote header to /data/u/.cache/nanochat/report/header.md\n" + "x\n" * 9000
    assert detect(head[:SNIFF_BYTES].encode(), "speedrun.log") is nanochat.SPEC
    out = _log("18:32:36", "checkpoint_manager", "No model tag provided, guessing model tag: d20") + "\n"
    assert detect(out.encode(), "output.log") is nanochat.SPEC
    assert detect(b":W&B\xbe\xe1\x00" + out.encode(), "run-x.wandb") is None  # the binary quoting it is not text
    # llm.c's "step 1/74 | loss ..." is llm.c's.
    assert detect(b"step    1/74 | loss 7.577 (+nanz)| norm 15.6 (+nanz)| lr 1.00e-04 | 380.70 ms\n", "x.log") is not (
        nanochat.SPEC
    )
    assert by_format("nanochat") is nanochat.SPEC


def test_detection_through_a_long_install_preamble() -> None:
    # speedrun.sh: uv's download bars, drawn with colours and \r, can fill
    # the first MB; its build and install of the checkout come first.
    bars = "\x1b[2mtorch\x1b[0m \x1b[32m----\x1b[0m 1.00 MiB/800.00 MiB\r" * 6000
    built = "   \x1b[36m\x1b[1mBuilding\x1b[0m\x1b[39m nanochat\x1b[2m @ file:///home/u/nanochat\x1b[0m\n"
    assert len(bars) > SNIFF_BYTES_MORE
    assert detect((built + bars).encode()[:SNIFF_BYTES], "speedrun.log") is nanochat.SPEC
    installed = " \x1b[32m+\x1b[39m \x1b[1mnanochat\x1b[0m\x1b[2m==0.1.0 (from file:///home/u/nanochat)\x1b[0m\n"
    assert detect((installed + bars).encode()[:SNIFF_BYTES], "speedrun.log") is nanochat.SPEC
    # Another project's log that only mentions the name is not nanochat's.
    assert detect(b"Building wheel for nanochat-tools\nstep 1 loss 2.0\n", "x.log") is None


# ------------------------------------------------------------------ corpus

# file, last step as printed (= done), target, last loss as printed, status, phase (run name), segments
CASES = [
    (
        "nanochat/nanochat_d24_4x3090_base5742_then_sft502_bf16mfu_epoch_speedrun.log",
        502,  # grep "^step " | tail -1: "step 00502 (99.54%) | loss: 0.899420"; "Step 00502 | Validation bpb: 0.3673"
        502,  # no total: derived, then the last step once "Total training time: 365.70m" ends the phase
        0.899420,
        "finished",  # "Total training time: 365.70m" (SFT), after "Total training time: 4402.26m" (base)
        "nanochat d24 sft",
        2,  # base "step 00000/05742" .. "step 05741/05742", then SFT "step 00001" .. "step 00502"
    ),
    (
        "nanochat/nanochat_d20_gradnorm_field_crlf_stopped_at_2369of21400_speedrun.log",
        2369,  # tail -1: "step 02369/21400 (11.07%) | loss: 3.205507 | grad norm: 0.1101 ..."
        21400,
        3.205507,
        "running",  # no end line; the failed first pass ("scripts.base_train FAILED", ^C) trained nothing
        "nanochat d20 base",
        1,  # grep -c "step 00000/": 1
    ),
    (
        "wandb_offline/nanochat_midtrain_d20_8xh100_765steps/wandb/run-20251015_183235-md4wekyz/files/output.log",
        765,  # "step 00765 (99.33%) | loss: 1.366061"; "Step 00765 | Validation bpb: 0.4158"
        765,  # derived (765 / 0.9933 -> 770), then 765 at "Total training time: 7.74m"
        1.366061,
        "finished",
        "nanochat d20 mid",  # "Loading model from .../base_checkpoints/d20"; saves to mid_checkpoints
        1,
    ),
]


@cache
def _source(path: Path) -> LogSource:
    source = LogSource(path)
    source.refresh()
    source.flush()
    return source


@pytest.mark.parametrize(("name", "done", "target", "loss", "status", "phase", "segments"), CASES)
def test_corpus_file(
    corpus: Path, name: str, done: int, target: int, loss: float, status: str, phase: str, segments: int
) -> None:
    path = corpus / name
    assert detect_head(path.read_bytes()[:SNIFF_BYTES_MORE], path.name) is nanochat.SPEC
    assert detect(path.read_bytes()[:SNIFF_BYTES], path.name) is nanochat.SPEC  # the first look suffices
    source = _source(path)
    assert source.format == "nanochat"
    st = _live(source)  # (a finished run stays finished at any time)
    assert (st.iter, st.target, st.loss, st.status, st.log_name, st.segments) == (
        done,
        target,
        loss,
        status,
        phase,
        segments,
    )
    assert st.val_loss is None  # bits per byte only


def test_corpus_d24_facts(corpus: Path) -> None:
    st = _source(corpus / CASES[0][0]).agg.stats(now=NOW)
    assert st.gpu == "NVIDIA GeForce RTX 3090"  # "GPU: NVIDIA GeForce RTX 3090 | Peak FLOPS (BF16): 7.10e+13"
    assert st.world_size == 4  # "Distributed world size: 4"
    assert st.params == 1384124976  # "total                   : 1,384,124,976"
    assert st.tokens_per_iter == 1048576  # "Total batch size 1,048,576 => gradient accumulation steps: 128"
    assert st.mfu_now_pct == 40.98  # SFT step 502 "mfu: 40.98"
    assert st.ended_at == datetime(2026, 3, 2, 4, 29, 40, 701000)  # last logger line before SFT's end
    # The SFT evals of step 502: "Validation bpb: 0.3673", "ChatCORE: 0.3164 | ChatCORE_cat: 0.2579".
    assert "eval @ 502: val_bpb 0.3673, chatcore 0.3164, chatcore_cat 0.2579" in st.events


def test_corpus_base_phase_of_d24(corpus: Path) -> None:
    """The base phase alone, up to its end line: 5742 of 5742 by its last eval."""
    lines = (corpus / CASES[0][0]).read_bytes().decode().split("\n")
    end = lines.index("Total training time: 4402.26m") + 1
    records = _feed(lines[:end])
    st = _stats(records)
    # "step 05741/05742 (99.98%) | loss: 2.574317"; "Step 05742 | Validation bpb: 0.762070"
    assert (st.iter, st.target, st.loss, st.status, st.log_name) == (
        5742,
        5742,
        2.574317,
        "finished",
        "nanochat d24 base",
    )
    last_eval = [r for r in records if isinstance(r, Eval)][-1]
    assert last_eval == Eval(iter=5742, metrics={"val_bpb": 0.762070, "core_metric": 0.2330})  # "CORE metric: 0.2330"
    assert st.mfu_now_pct == 40.94  # "bf16_mfu: 40.94"


# ---------------------------------------------------------------- fast path

FAST_CASES = [
    "step 00011/05742 (0.19%) | loss: 7.763521 | lrm: 1.00 | dt: 49206.85ms | tok/sec: 21,309 | bf16_mfu: 37.10 | "
    "epoch: 1 | total time: 0.82m | eta: 4700.1m",
    "step 00001 (0.28%) | loss: 1.284350 | lrm: 0.00 | dt: 15133.87ms | tok/sec: 34,643 | mfu: 1.53 | total time: 0m",
    "step 00000/21400 (0.00%) | loss: 11.090355 | grad norm: 0.4282 | lrm: 1.00 | dt: 14000.00ms | tok/sec: 37,449 | "
    "mfu: 12.00 | total time: 0.00m",
    "step 00001 (0.28%) | loss: nan | lrm: 0.00 | dt: 1.0ms | tok/sec: 1 | mfu: 1.53 | total time: 0.00m",
    "step 00001 (0.28%) | loss: 1,5 | lrm: 0.00 | dt: 1.0ms | tok/sec: 1 | mfu: 1.53 | total time: 0.00m",
    "step 00001 (0.28%) | loss: 1.0 | grad norm: inf | lrm: 0.00 | dt: 1.0ms | tok/sec: 1 | mfu: 1.53 | x",
    "step 00001 (0.28%) | loss: 1.0 | lrm: 0.00 | dt: 1.0ms | tok/sec: 1 | mfu: 1.53",  # cut after mfu
    "step 00001 (0.28%) | loss: 1.0 | lrm: 0.00 | dt: " + "9" * 400 + "ms | tok/sec: 1 | mfu: 1.53 | x",
]


@pytest.mark.parametrize("line", FAST_CASES)
def test_fast_path_reads_as_the_general_one(line: str) -> None:
    fast = nanochat_steps.fast_step(line)
    assert fast is None or repr(fast) == repr(nanochat_steps.read_step(line))  # repr: nan == nan


def test_fast_path_on_every_corpus_line(corpus: Path) -> None:
    taken = 0
    for name, *_ in CASES:
        for line in (corpus / name).read_bytes().decode("utf-8", "replace").split("\n"):
            line = line.removesuffix("\r")
            if line.startswith("step ") and (fast := nanochat_steps.fast_step(line)) is not None:
                taken += 1
                assert fast == nanochat_steps.read_step(line), line
    assert taken == 5742 + 502 + 2370 - 1 + 765  # all but the d20 line behind "ESC[A" (cleaned first)
