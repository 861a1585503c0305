"""Generated logs of the line formats with a bulk path, and each one's floor.

Each log is ~``size_bytes`` of the format as its framework prints it, with
the lines a long run has between its per-step lines (evals, saves, the
collector's notes), deterministic for a seed. Each floor reads the same
bytes with the least code that gets out the numbers the parser takes: one
compiled regex per line and ``int``/``float`` (``datetime.fromisoformat``
for a time) of each, or ``orjson.loads`` per line for JSON lines.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson

START = datetime(2026, 4, 27, 16, 43, 50)


@dataclass(frozen=True)
class Format:
    """One line format: its generator, its file name and its floor."""

    name: str
    filename: str
    lines: Callable[[random.Random], Iterator[str]]  # the whole log, line by line, without end
    floor: Callable[[Path], int]  # per-step lines read the least way


def _loss(step: int, r: random.Random) -> float:
    return 2.5 + 8.0 / (1 + step / 300) + r.gauss(0, 0.02)


# ------------------------------------------------------------------ llm.c


def _llmc(r: random.Random) -> Iterator[str]:
    yield "+-----------------------+----------------------------------------------------+"
    yield "| max_steps             | -1                                                 |"
    yield "| train_num_batches     | 10000000                                           |"
    yield "| num_processes         | 1                                                  |"
    yield "+-----------------------+----------------------------------------------------+"
    yield "batch_size B=32 * seq_len T=1024 * num_processes=1 and total_batch_size=524288"
    yield "val loss 11.007921"
    step = 0
    while True:
        step += 1
        z = f"{r.gauss(0, 1):+.2f}z"
        yield (
            f"step {step:4d}/10000000 | loss {_loss(step, r):.6f} ({z})| norm {r.uniform(0.2, 1.5):.4f} ({z})"
            f"| lr {6e-4 * min(1, step / 700):.2e} | {r.gauss(4230, 20):.2f} ms | {r.gauss(31.9, 0.2):.1f}% bf16 MFU"
            f" | {r.randint(120000, 125000)} tok/s"
        )
        if step % 250 == 0:
            yield f"val loss {_loss(step, r):.6f}"
            yield f"HellaSwag: {r.randint(2400, 2700)}/10042 = {r.uniform(0.24, 0.27):.6f}"
        if step % 5000 == 0:
            yield f"Writing model to log124M/model_{step:08d}.bin"


_LLMC = re.compile(
    rb"step +(\d+)/(\d+) \| loss +([^ ]+) \([^)]*\)\| norm +([^ ]+) \([^)]*\)\| lr ([^ ]+) \| ([^ ]+) ms"
    rb" \| ([^ %]+)% bf16 MFU \| ([^ ]+) tok/s"
)


def _llmc_floor(path: Path) -> int:
    found = 0
    for line in path.read_bytes().split(b"\n"):
        if (m := _LLMC.match(line)) is not None:
            int(m[1]), int(m[2]), float(m[3]), float(m[4]), float(m[5]), float(m[6]), float(m[7]), float(m[8])
            found += 1
    return found


# ------------------------------------------------------------- torchtitan


def _titan(r: random.Random) -> Iterator[str]:
    yield (
        "[rank0]:[titan] 2026-04-27 16:40:00,000 - root - INFO - Trainer is initialized with local batch size 8, "
        "global batch size 64, gradient accumulation steps 1, sequence length 2048, total steps 10000000"
    )
    when = START
    step = 0
    while True:
        step += 1
        when += timedelta(seconds=r.gauss(4.9, 0.05))
        stamp = f"{when:%Y-%m-%d %H:%M:%S},{when.microsecond // 1000:03d}"
        yield (
            f"[rank0]:[titan] {stamp} - root - INFO - \x1b[31mstep: {step:2d}  \x1b[32mloss: {_loss(step, r):8.5f}  "
            f"\x1b[38;2;180;60;0mgrad_norm: {r.uniform(0.1, 1.5):7.4f}  \x1b[38;2;54;234;195mmemory: 26.01GiB(82.96%)  "
            f"\x1b[34mtps: {r.randint(3200, 3260):,}  \x1b[36mtflops: 20.14  "
            f"\x1b[35mmfu: {r.gauss(6.45, 0.02):.2f}%\x1b[39m"
        )
        if step % 50 == 0:  # torchtitan's gc_freq: the collector runs and says so
            yield f"[rank0]:[titan] {stamp} - root - INFO - [GC] Performing periodic GC collection took 0.17 seconds"
        if step % 500 == 0:
            yield (
                f"[rank0]:[titan] {stamp} - root - INFO - \x1b[33mvalidate step: {step}  \x1b[32mloss: "
                f"{_loss(step, r):.4f}  \x1b[38;2;54;234;195mmemory: 23.77GiB(75.82%)  \x1b[34mtps: 7,228\x1b[39m"
            )


_TITAN = re.compile(
    rb"\[rank(\d+)\]:\[titan\] (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) - root - INFO - \x1b\[31mstep: *(\d+) +"
    rb"\x1b\[32mloss: *(\S+) +\x1b\[[\d;]+mgrad_norm: *(\S+) +\x1b\[[\d;]+mmemory: *\S+ +\x1b\[34mtps: *([\d,]+) +"
    rb"\x1b\[36mtflops: *\S+ +\x1b\[35mmfu: *([\d.]+)%"
)


def _titan_floor(path: Path) -> int:
    found = 0
    for line in path.read_bytes().split(b"\n"):
        if (m := _TITAN.match(line)) is not None:
            datetime.fromisoformat(f"{m[2].decode()}.{m[3].decode()}")
            int(m[4]), float(m[5]), float(m[6]), float(m[7].replace(b",", b"")), float(m[8])
            found += 1
    return found


# --------------------------------------------------------------- Megatron


def _megatron(r: random.Random) -> Iterator[str]:
    yield "------------------------ arguments ------------------------"
    yield "  train_iters ..................................... 10000000"
    yield "  seq_length ...................................... 2048"
    yield "-------------------- end of arguments ---------------------"
    when = START
    step = 0
    while True:
        step += 1
        when += timedelta(seconds=r.gauss(2.2, 0.01))
        yield (
            f"9: [default3]: [{when:%Y-%m-%d %H:%M:%S.%f}] iteration {step:8d}/10000000 | "
            f"consumed samples: {80 * step:12d} | elapsed time per iteration (ms): {r.gauss(2215, 10):.1f} | "
            f"throughput per GPU (TFLOP/s/GPU): {r.gauss(67.8, 0.3):.1f} | learning rate: {3e-4:.6E} | "
            f"global batch size:    80 | lm loss: {_loss(step, r):.6E} | loss scale: 1.0 | "
            f"grad norm: {r.uniform(0.2, 2):.3f} | number of skipped iterations:   0 | number of nan iterations:   0 |"
        )
        if step % 1000 == 0:
            yield "9: [default3]: " + "-" * 100
            yield (
                f"9: [default3]:  validation loss at iteration {step} | lm loss value: {_loss(step, r):.6E} | "
                f"lm loss PPL: 1.000000E+02 | "
            )
            yield "9: [default3]: " + "-" * 100
            yield f"9: [default3]:   successfully saved checkpoint from iteration {step:8d} to /ckpt [ t 1/1, p 1/1 ]"


_MEGATRON = re.compile(
    rb"\d+: \[default\d+\]: \[([\d :.-]+)\] iteration +(\d+)/ *(\d+) \| consumed samples: +\d+ \| "
    rb"elapsed time per iteration \(ms\): ([^|]+)\| throughput per GPU \(TFLOP/s/GPU\): ([^|]+)\| "
    rb"learning rate: ([^|]+)\| global batch size: ([^|]+)\| lm loss: ([^|]+)\| loss scale: [^|]+\| "
    rb"grad norm: ([^|]+)\| number of skipped iterations: [^|]+\| number of nan iterations: ([^|]+)\|"
)


def _megatron_floor(path: Path) -> int:
    found = 0
    for line in path.read_bytes().split(b"\n"):
        if (m := _MEGATRON.match(line)) is not None:
            datetime.fromisoformat(m[1].decode())
            int(m[2]), int(m[3]), float(m[4]), float(m[5]), float(m[6]), int(m[7]), float(m[8]), float(m[9])
            int(m[10])
            found += 1
    return found


# ----------------------------------------------------------- build-nanogpt


def _buildnanogpt(r: random.Random) -> Iterator[str]:
    step = 0
    while True:
        if step % 250 == 0:
            yield f"{step} val {_loss(step, r):.4f}"
            yield f"{step} hella {r.uniform(0.24, 0.3):.4f}"
        yield f"{step} train {_loss(step, r):.6f}"
        step += 1


_BUILD = re.compile(rb"(\d+) train (\S+)")


def _buildnanogpt_floor(path: Path) -> int:
    found = 0
    for line in path.read_bytes().split(b"\n"):
        if (m := _BUILD.match(line)) is not None:
            int(m[1]), float(m[2])
            found += 1
    return found


# ------------------------------------------------------- llm.c's main.log


def _llmc_main(r: random.Random) -> Iterator[str]:
    step = 0
    while True:
        if step % 250 == 0:
            yield f"s:{step} tel:{_loss(step, r):.6f}"
            yield f"s:{step} eval:{r.uniform(0.24, 0.3):.6f}"
        yield f"s:{step} trl:{_loss(step, r):.6f} lr:{6e-4:.6e} norm:{r.uniform(0.2, 1.5):.4f}"
        step += 1


_MAIN = re.compile(rb"s:(\d+) trl:(\S+) lr:(\S+) norm:(\S+)")


def _llmc_main_floor(path: Path) -> int:
    found = 0
    for line in path.read_bytes().split(b"\n"):
        if (m := _MAIN.match(line)) is not None:
            int(m[1]), float(m[2]), float(m[3]), float(m[4])
            found += 1
    return found


# ------------------------------------------------------ LLaMA-Factory JSONL


def _llamafactory(r: random.Random) -> Iterator[str]:
    total, every = 10_000_000, 5
    step = 0
    while True:
        step += every
        secs = int(step * 42.5)
        elapsed = f"{secs // 3600}:{secs // 60 % 60:02d}:{secs % 60:02d}"
        yield (
            orjson.dumps(
                {
                    "current_steps": step,
                    "total_steps": total,
                    "loss": round(_loss(step, r), 4),
                    "lr": 4.999995936372264e-05,
                    "epoch": round(step / 8712, 2),
                    "percentage": round(100 * step / total, 2),
                    "elapsed_time": elapsed,
                    "remaining_time": "4 days, 5:06:09",
                    "throughput": round(r.uniform(2000, 2100), 2),
                    "total_tokens": step * 4096,
                }
            )
            .decode()
            .replace('":', '": ')
            .replace(',"', ', "')
        )
        if step % 500 == 0:
            yield orjson.dumps(
                {"current_steps": step, "total_steps": total, "eval_loss": round(_loss(step, r), 4),
                 "epoch": round(step / 8712, 2), "percentage": round(100 * step / total, 2),
                 "elapsed_time": elapsed, "remaining_time": "4 days, 5:06:09"}
            ).decode().replace('":', '": ').replace(',"', ', "')  # fmt: skip


def _jsonl_floor(path: Path) -> int:
    found = 0
    for line in path.read_bytes().split(b"\n"):
        if line:
            orjson.loads(line)
            found += 1
    return found


FORMATS = {
    f.name: f
    for f in (
        Format("llmc_stdout", "train.log", _llmc, _llmc_floor),
        Format("torchtitan_stdout", "train.log", _titan, _titan_floor),
        Format("megatron_stdout", "train.log", _megatron, _megatron_floor),
        Format("buildnanogpt_logtxt", "log.txt", _buildnanogpt, _buildnanogpt_floor),
        Format("llmc_main_log", "main.log", _llmc_main, _llmc_main_floor),
        Format("llamafactory_jsonl", "trainer_log.jsonl", _llamafactory, _jsonl_floor),
    )
}


def write(fmt: Format, path: Path, size_bytes: int, *, seed: int = 0) -> None:
    """``size_bytes`` or so of ``fmt``'s log at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = fmt.lines(random.Random(seed))
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < size_bytes:
            block = "\n".join(next(lines) for _ in range(200)) + "\n"
            written += out.write(block)


#: Bump when a generator changes: cached files carry it in their folder's name.
VERSION = 1


def cached(name: str, size_bytes: int, folder: Path) -> Path:
    """A cached log of format ``name``, about ``size_bytes`` (generated on first use)."""
    fmt = FORMATS[name]
    path = folder / f"{name}-v{VERSION}-{size_bytes}" / fmt.filename
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        write(fmt, tmp, size_bytes)
        tmp.rename(path)
    return path


def mixed_folder(runs: int, folder: Path) -> Path:
    """A cached folder of ``runs`` runs in every format with a bulk path, and
    nanoGPT, the seed's JSON and TensorBoard events, each of 20 KB to 2 MB."""
    from benchmarks import generate

    out = folder / f"mixed-v{VERSION}-{runs}"
    if out.exists():
        return out
    tmp = out.with_name(out.name + ".tmp")
    kinds = [*FORMATS, "nanogpt_stdout", "llm_tii_json", "tfevents"]
    rng = random.Random(runs)
    for k in range(runs):
        kind = kinds[k % len(kinds)]
        size = int(20_000 * 100 ** rng.random())  # 20 KB to 2 MB, most of them small
        run = tmp / f"run{k:03d}"
        if kind == "nanogpt_stdout":
            generate.write_nanogpt(run / "train.log", size, seed=k)
        elif kind == "llm_tii_json":
            generate.write_seed_json(run / f"run_{k:03d}.json", max(10, size // 1000), seed=k)
        elif kind == "tfevents":
            run.mkdir(parents=True)
            generate.write_tfevents(run / f"events.out.tfevents.1777795372.bench.{k}.0", size, seed=k)
        else:
            write(FORMATS[kind], run / FORMATS[kind].filename, size, seed=k)
    tmp.rename(out)
    return out
