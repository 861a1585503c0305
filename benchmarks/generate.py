"""Generated inputs for the benchmarks: nothing big is ever checked in.

Three shapes, all deterministic for a given seed:

* a nanoGPT console log (``iter N: loss X, time Yms, mfu Z%`` per logged step,
  ``step N: train loss A, val loss B`` and ``saving checkpoint to out`` at each
  eval), sized in bytes;
* the seed's JSON run log (``llm_tii_json``), entry for entry the shape of
  ``shared/corpus/llm_tii_json/run_20251113_225009.json``: ``iter``, ``loss``,
  ``time_ms`` and an ``mfu`` dict of 18 keys plus a ``memory`` dict (the first
  entry logs the ``-100.0`` warm-up sentinel), one eval and one checkpoint per
  ``eval_interval``, ``metadata``, ``end_time`` and ``summary`` at the end;
* a TensorBoard event file as torchtitan writes it (``tfevents``): the
  version record, then per step one scalar event for each of its 17 tags,
  sized in bytes.

Files go to a folder the caller names (a temp dir, or ``benchmarks/data/``,
which git ignores).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

DATA = Path(__file__).resolve().parent / "data"
START = datetime(2025, 11, 13, 22, 50, 9, 271150)
LOG_INTERVAL = 10
EVAL_INTERVAL = 1000
ITER_MS = 27_650.0


# ------------------------------------------------------------ nanoGPT stdout


def nanogpt_lines(n_iters: int, *, seed: int = 0, start: int = 0) -> Iterator[str]:
    """Console lines for logged iterations ``start`` .. ``start + n_iters - 1`` (one per step)."""
    rng = random.Random(seed + start)
    loss = 10.9 - 6 * min(1.0, start / 200_000)
    for step in range(start, start + n_iters):
        if step and step % EVAL_INTERVAL == 0:
            yield f"step {step}: train loss {loss:.4f}, val loss {loss + 0.05:.4f}"
            yield "saving checkpoint to out"
        loss = max(1.5, loss * 0.99995 + rng.gauss(0, 0.002))
        mfu = -100.0 if step < 5 else 38 + rng.gauss(0, 0.5)
        time_ms = (ITER_MS if step % EVAL_INTERVAL else 4 * ITER_MS) / 200 * (1 + rng.gauss(0, 0.01))
        yield f"iter {step}: loss {loss:.4f}, time {time_ms:.2f}ms, mfu {mfu:.2f}%"


NANOGPT_PREAMBLE = (
    "Overriding config with config/train_gpt2.py:\n"
    "batch_size = 12\nblock_size = 1024\ngradient_accumulation_steps = 40\n"
    "max_iters = 10000000\neval_interval = 1000\nlog_interval = 1\n"
    "tokens per iteration will be: 491,520\n"
    "number of parameters: 123.69M\n"
)


def write_nanogpt_iters(path: Path, n_iters: int, *, seed: int = 0) -> None:
    """A nanoGPT console log with exactly ``n_iters`` iteration lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write(NANOGPT_PREAMBLE)
        for start in range(0, n_iters, 10_000):
            out.write("\n".join(nanogpt_lines(min(10_000, n_iters - start), seed=seed, start=start)) + "\n")


def write_nanogpt(path: Path, size_bytes: int, *, seed: int = 0) -> int:
    """A nanoGPT console log of about ``size_bytes``; returns the number of iteration lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written, steps = 0, 0
    with open(path, "w", encoding="utf-8") as out:
        out.write(NANOGPT_PREAMBLE)
        written += len(NANOGPT_PREAMBLE)
        while written < size_bytes:
            block = "\n".join(nanogpt_lines(10_000, seed=seed, start=steps)) + "\n"
            out.write(block)
            written += len(block)
            steps += 10_000
    return steps


# ------------------------------------------------------------ seed JSON log


def _mfu(rng: random.Random) -> dict[str, Any]:
    pct = 27.9 + rng.gauss(0, 0.3)
    achieved = pct / 100 * 310e12
    return {
        "mfu": pct / 100,
        "mfu_percent": pct,
        "flops_achieved": achieved,
        "flops_per_token": 12182802432.0,
        "tokens_per_sec": achieved / 12182802432.0,
        "hardware_peak_flops": 310000000000000.0,
        "hardware_peak_tflops": 310.0,
        "achieved_tflops": achieved / 1e12,
        "gpu_name": "A6000",
        "precision": "bf16",
        "num_gpus": 2.0,
        "model_params_billion": 1.82914048,
        "non_attn_gflops": 10.97484288,
        "attn_gflops": 1.207959552,
        "attention_flops_per_layer": 343597383680.0,
        "ffn_flops_per_layer": 137430564864.0,
        "attention_to_ffn_ratio": 2.500152597204419,
        "architecture": "24L-16H-2048D-RoPE-RMS-SwiGLU-PreNorm",
    }


def seed_entries(n: int, *, seed: int = 0, start: int = 0) -> list[dict[str, Any]]:
    """Logged iterations ``start`` .. ``start + n - 1`` (logged indices; iter = index × 10)."""
    rng = random.Random(seed * 7919 + start)
    out: list[dict[str, Any]] = []
    for index in range(start, start + n):
        step = index * LOG_INTERVAL
        loss = 1.8 + 10 / (1 + step / 500) + rng.gauss(0, 0.01)
        if index == 0:
            out.append({"iter": 0, "loss": loss, "time_ms": 67057.17420578003, "mfu": -100.0})
            continue
        time_ms = ITER_MS * (1 + rng.gauss(0, 0.003)) * (12 if step % EVAL_INTERVAL == 0 else 1)
        memory = {
            "allocated_gb": 12.247712256,
            "reserved_gb": 31.398559744,
            "max_allocated_gb": 28.705547776,
            "max_reserved_gb": 31.398559744,
        }
        out.append({"iter": step, "loss": loss, "time_ms": time_ms, "mfu": _mfu(rng), "memory": memory})
    return out


def seed_head() -> dict[str, Any]:
    """The keys before ``training_iterations`` (run name, start, config, startup info)."""
    config = {
        "out_dir": "out-bench-1.8b",
        "eval_interval": EVAL_INTERVAL,
        "log_interval": LOG_INTERVAL,
        "eval_iters": 50,
        "eval_at_start": False,
        "log_save_interval": LOG_INTERVAL,
        "wandb_run_name": "bench-1.8b",
        "dataset": "slimpajama_6b_qwen3",
        "gradient_accumulation_steps": 96,
        "batch_size": 2,
        "block_size": 2048,
        "n_layer": 24,
        "n_head": 16,
        "n_embd": 2048,
        "max_iters": 2_000_000,
        "dtype": "bfloat16",
        "compile": True,
    }
    startup = {
        "timestamp": START.isoformat(),
        "model": {"total_params": 1829140480, "trainable_params": 1829140480},
        "config": config,
        "hardware": {"gpu_name": "NVIDIA RTX A6000", "num_gpus": 2, "precision": "bf16"},
    }
    return {"run_name": "run_bench", "start_time": START.isoformat(), "config": config, "startup_info": startup}


def _eval(step: int) -> dict[str, Any]:
    return {
        "iter": step,
        "train_loss": 2.0 + 1000 / (step + 100),
        "val_loss": 2.05 + 1000 / (step + 100),
        "timestamp": (START + timedelta(milliseconds=step * ITER_MS)).isoformat(),
        "lr": 0.0003,
    }


def _checkpoint(step: int) -> dict[str, Any]:
    return {
        "iter": step,
        "val_loss": 2.05 + 1000 / (step + 100),
        "path": "out-bench-1.8b/ckpt.pt",
        "timestamp": (START + timedelta(milliseconds=step * ITER_MS + 270_000)).isoformat(),
    }


def seed_doc(n: int, *, seed: int = 0, finished: bool = True) -> dict[str, Any]:
    """A whole seed-format document with ``n`` logged iterations."""
    doc = seed_head()
    doc["training_iterations"] = seed_entries(n, seed=seed)
    last = (n - 1) * LOG_INTERVAL
    evals = range(EVAL_INTERVAL, last + 1, EVAL_INTERVAL)
    doc["eval_steps"] = [_eval(s) for s in evals]
    doc["checkpoints"] = [_checkpoint(s) for s in evals]
    doc["metadata"] = {"world_size": 2, "device": "cuda:0", "dtype": "bfloat16", "compile": True}
    if finished:
        doc["end_time"] = (START + timedelta(milliseconds=last * ITER_MS * 1.05)).isoformat()
        doc["summary"] = {"total_iterations": n, "final_iter": last}
    return doc


def grow(doc: dict[str, Any], more: int, *, seed: int = 0) -> dict[str, Any]:
    """The same run ``more`` logged iterations later, as its logger rewrites it (key order kept)."""
    old = doc["training_iterations"]
    new = seed_entries(more, seed=seed, start=len(old))
    out = dict(doc)
    out["training_iterations"] = old + new
    before, last = old[-1]["iter"] if old else -1, new[-1]["iter"] if new else -1
    steps = [s for s in range(EVAL_INTERVAL, last + 1, EVAL_INTERVAL) if s > before]
    out["eval_steps"] = doc["eval_steps"] + [_eval(s) for s in steps]
    out["checkpoints"] = doc["checkpoints"] + [_checkpoint(s) for s in steps]
    return out


def dump(doc: dict[str, Any]) -> bytes:
    """Indented like the seed's logger writes it (``json.dump(..., indent=2)``)."""
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def write_seed_json(path: Path, n: int, *, seed: int = 0, finished: bool = True) -> dict[str, Any]:
    """Write a seed-format document with ``n`` logged iterations; returns the document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = seed_doc(n, seed=seed, finished=finished)
    path.write_bytes(dump(doc))
    return doc


# ------------------------------------------------------- TensorBoard events

#: torchtitan's MetricsProcessor.log keys (one add_scalar each per logged step).
TITAN_TAGS = (
    "loss_metrics/global_avg_loss",
    "loss_metrics/global_max_loss",
    "grad_norm",
    "n_tokens_seen",
    "throughput(tps)",
    "tflops",
    "mfu(%)",
    "time_metrics/end_to_end(s)",
    "time_metrics/data_loading(s)",
    "time_metrics/data_loading(%)",
    "memory/max_active(GiB)",
    "memory/max_active(%)",
    "memory/max_reserved(GiB)",
    "memory/max_reserved(%)",
    "memory/num_alloc_retries",
    "memory/num_ooms",
    "lr",
)
TITAN_STEP_S = 4.88


def write_tfevents(path: Path, size_bytes: int, *, seed: int = 0) -> int:
    """A torchtitan-style event file of about ``size_bytes``; returns its steps."""
    from trainwatch.parsers.tfevents_proto import Event, Summary, Value
    from trainwatch.parsers.tfrecord import encode

    rng = random.Random(seed)
    start = START.timestamp()
    with open(path, "wb") as handle:
        written = handle.write(encode(Event(wall_time=start, file_version=b"brain.Event:2").SerializeToString()))
        step = 0
        while written < size_bytes:
            step += 1
            wall = start + 30 + step * TITAN_STEP_S + rng.uniform(-0.05, 0.05)
            loss = 3.5 + 6.0 / (1 + step / 500) + rng.uniform(-0.2, 0.2)
            values = [loss, loss * 1.05, rng.uniform(0.5, 2.0), 4128.0 * step, rng.uniform(100, 110), 0.64]
            values += [rng.uniform(0.2, 0.21), TITAN_STEP_S, 0.003, 0.05, 6.7, 21.5, 8.7, 27.8, 0.0, 0.0, 1e-5]
            frames = []
            for offset, (tag, value) in enumerate(zip(TITAN_TAGS, values, strict=True)):
                summary = Summary(value=[Value(tag=tag.encode(), simple_value=value)]).SerializeToString()
                event = Event(wall_time=wall + offset * 1e-5, step=step, summary=summary)
                frames.append(encode(event.SerializeToString()))
            written += handle.write(b"".join(frames))
    return step


#: Bump when the generators change: cached files carry it in their names.
VERSION = 1


def nanogpt_file(size_bytes: int, folder: Path = DATA) -> Path:
    """A cached nanoGPT console log of about ``size_bytes`` (generated on first use)."""
    path = folder / f"nanogpt-v{VERSION}-{size_bytes}.log"
    if not path.exists():
        write_nanogpt(path.with_suffix(".tmp"), size_bytes)
        path.with_suffix(".tmp").rename(path)
    return path


def seed_json_file(n: int, folder: Path = DATA, *, finished: bool = True) -> Path:
    """A cached seed-format JSON log with ``n`` logged iterations (generated on first use)."""
    path = folder / f"seed-v{VERSION}-{n}{'' if finished else '-live'}.json"
    if not path.exists():
        write_seed_json(path.with_suffix(".tmp"), n, finished=finished)
        path.with_suffix(".tmp").rename(path)
    return path


def tfevents_file(size_bytes: int, folder: Path = DATA) -> Path:
    """A cached torchtitan-style event file of about ``size_bytes`` (generated on first use)."""
    path = folder / f"tfevents-v{VERSION}-{size_bytes}" / "events.out.tfevents.1777795372.bench.1.0"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_tfevents(path.with_suffix(".tmp"), size_bytes)
        path.with_suffix(".tmp").rename(path)
    return path
