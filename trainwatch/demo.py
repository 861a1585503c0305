"""``trainwatch demo``: four simulated training runs, written live, to watch.

A simulator writes four concurrent runs into a folder, in formats trainwatch
reads: two JSON run logs of the seed's "enhanced training system"
(``llm_tii_json``), rewritten whole and non-atomically every few iterations as
that logger does, and two nanoGPT console logs (``nanogpt_stdout``) appended
line by line. The clock is accelerated (``speed`` simulated seconds per real
second). Losses decay with noise, evals pause a run noticeably, one run stalls
for a while and then resumes, and one diverges (its loss becomes ``nan``).

Timestamps are simulated, anchored so that a run's "now" is the real now at
each write: a run that has trained for three simulated hours started three
hours ago. Elapsed time, ETA and finish time in the app then tell one
consistent (simulated) story, and stall detection works on the real clock.
All data is generated here; no third-party log is copied.
"""

from __future__ import annotations

import json
import math
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

#: Real seconds between two writer steps.
STEP_S = 0.1
#: How long the stalling run stops writing, in real seconds: long enough that
#: the app calls it stalled (at least 60 s, and 3× its usual update gap).
STALL_REAL_S = 180.0


@dataclass
class Plan:
    """One simulated run: its model, hardware, schedule and fate."""

    slug: str  # folder and display name
    kind: str  # "json" or "text"
    params: float
    n_layer: int
    n_head: int
    n_embd: int
    block: int
    batch: int
    accum: int  # global gradient accumulation
    gpus: int
    gpu_name: str
    peak_tflops: float  # the peak the logger divides by
    mfu: float  # fraction
    max_iters: int
    eval_interval: int
    eval_s: float  # simulated seconds per eval pass (+ checkpoint)
    loss0: float
    loss_end: float
    head_start: int  # iterations already done when the demo starts
    stall_at: int | None = None
    diverge_at: int | None = None
    seed: int = 0
    log_interval: int = 10

    @property
    def tokens_per_iter(self) -> int:
        return self.batch * self.accum * self.block

    @property
    def flops_per_token(self) -> float:
        return 6 * self.params + 12 * self.n_layer * self.n_embd * self.block

    @property
    def iter_s(self) -> float:
        return self.tokens_per_iter * self.flops_per_token / (self.gpus * self.peak_tflops * 1e12 * self.mfu)


PLANS = (
    Plan("llama-350m-demo", "json", 350e6, 24, 16, 1024, 2048, 8, 32, 4, "NVIDIA A100-SXM4-80GB", 312.0, 0.41,
         5000, 1000, 180.0, 10.4, 2.9, 1250, seed=1),
    Plan("qwen3-600m-demo", "json", 600e6, 28, 16, 1024, 2048, 4, 16, 2, "NVIDIA RTX A6000", 310.0, 0.28,
         4000, 1000, 240.0, 11.9, 3.1, 2200, stall_at=2600, seed=2),
    Plan("gpt2-124m-demo", "text", 124e6, 12, 12, 768, 1024, 12, 40, 1, "A100", 312.0, 0.38,
         5000, 500, 60.0, 10.9, 3.0, 500, seed=3),
    Plan("gpt2-350m-lr3e-3", "text", 350e6, 24, 16, 1024, 1024, 8, 64, 1, "A100", 312.0, 0.40,
         2000, 250, 90.0, 10.9, 3.2, 450, diverge_at=700, seed=4),
)  # fmt: skip


@dataclass
class Event:
    """Something the run logs at simulated second ``t`` of its life."""

    t: float
    kind: str  # "iter", "eval", "end"
    step: int
    loss: float = 0.0
    val: float = 0.0
    ms: float = 0.0
    mfu: float | None = None


@dataclass
class Run:
    """A plan in motion: its event stream and what has been written so far."""

    plan: Plan
    path: Path
    events: list[Event]
    start: float = 0.0  # when it started, on the demo's simulated clock (negative: before the demo)
    pos: int = 0
    done: list[Event] = field(default_factory=list)
    finished: bool = False

    def due(self, t: float) -> list[Event]:
        """Events up to simulated second ``t`` that are not written yet."""
        start = self.pos
        while self.pos < len(self.events) and self.events[self.pos].t <= t:
            self.pos += 1
        new = self.events[start : self.pos]
        self.done.extend(new)
        self.finished = self.pos == len(self.events)
        return new


def schedule(plan: Plan, speed: float) -> list[Event]:
    """Every event of a run, on its own simulated clock (seconds since it started)."""
    rng = random.Random(plan.seed)
    events: list[Event] = []
    t = 0.0
    best = math.inf
    tau = plan.max_iters / 8
    for step in range(plan.max_iters + 1):
        if plan.diverge_at is not None and step > plan.diverge_at + 5 * plan.log_interval:
            break  # somebody killed the diverged run
        base = plan.loss_end + (plan.loss0 - plan.loss_end) * (1 + step / tau) ** -1.2
        loss = base * (1 + rng.gauss(0, 0.012))
        if plan.diverge_at is not None and step >= plan.diverge_at - 100:
            # A too-high learning rate: the loss climbs for a while, then overflows.
            loss = math.nan if step >= plan.diverge_at else loss * math.exp(2.2 * (step - plan.diverge_at + 100) / 100)
        seconds = plan.iter_s * (1 + rng.gauss(0, 0.015))
        if plan.stall_at is not None and step == plan.stall_at:
            seconds += STALL_REAL_S * speed  # stuck (a hung data loader, a dead node) for real minutes
        if step == 0:
            seconds += 45.0 + plan.iter_s * 5  # torch.compile and warm-up
        evaluated = step % plan.eval_interval == 0 and (step > 0 or plan.kind == "text")
        if evaluated:
            val = base * 1.01 + 0.02 if math.isfinite(loss) else math.nan
            pause = plan.eval_s * (1 + rng.gauss(0, 0.03))
            seconds += pause
            events.append(Event(t + pause, "eval", step, loss=loss, val=val))
            best = min(best, val) if math.isfinite(val) else best
        t += seconds
        if step % plan.log_interval == 0 or step == plan.max_iters:
            mfu = None if step == 0 else plan.mfu * 100 * (plan.iter_s / seconds) * (1 + rng.gauss(0, 0.004))
            events.append(Event(t, "iter", step, loss=loss, ms=seconds * 1000, mfu=mfu))
    if plan.diverge_at is None:
        events.append(Event(t + 5.0, "end", plan.max_iters))
    return events


class Simulator:
    """Writes every run's due events; one ``step`` per call."""

    def __init__(self, folder: Path, speed: float) -> None:
        self.folder = folder
        self.speed = speed
        self.started = time.monotonic()
        self.runs: list[Run] = []
        for plan in PLANS:
            events = schedule(plan, speed)
            offset = next(e.t for e in events if e.kind == "iter" and e.step >= plan.head_start)
            for event in events:
                event.t -= offset  # the run is ``head_start`` iterations in when the demo starts
            (folder / plan.slug).mkdir(parents=True, exist_ok=True)
            name = "train.log" if plan.kind == "text" else f"run_{_stamp(offset)}.json"
            run = Run(plan, folder / plan.slug / name, events, start=-offset)
            if plan.kind == "text":
                run.path.write_text(_preamble(plan), encoding="utf-8")
            self.runs.append(run)

    @property
    def active(self) -> bool:
        return not all(run.finished for run in self.runs)

    def step(self) -> None:
        now = (time.monotonic() - self.started) * self.speed
        for run in self.runs:
            if run.finished:
                continue
            new = run.due(now)
            if run.plan.kind == "text":
                if new:
                    _append_text(run, new)
            elif new or not run.path.exists():
                _write_json(run, now)

    def run(self, stop: threading.Event, duration: float | None = None) -> None:
        """Step until every run is over, ``stop`` is set, or ``duration`` real seconds passed."""
        deadline = None if duration is None else time.monotonic() + duration
        while self.active and not stop.is_set():
            self.step()
            if deadline is not None and time.monotonic() >= deadline:
                return
            stop.wait(STEP_S)


def run_demo(folder: Path | None, speed: float, headless: bool, duration: float | None) -> int:
    """Simulate four runs into ``folder`` (a new temporary folder by default) and watch them."""
    try:
        target = Path(tempfile.mkdtemp(prefix="trainwatch-demo-")) if folder is None else folder
        target.mkdir(parents=True, exist_ok=True)
        simulator = Simulator(target, speed)
    except OSError as exc:
        sys.stderr.write(f"trainwatch: cannot write the demo runs: {exc.strerror or exc}\n")
        return 2
    stop = threading.Event()
    status = 0
    try:
        if headless:
            simulator.run(stop, duration)
        else:
            writer = threading.Thread(target=simulator.run, args=(stop, duration), name="demo-writer", daemon=True)
            writer.start()
            from trainwatch.core.names import Names
            from trainwatch.core.options import RunOptions
            from trainwatch.tui.app import run_app
            from trainwatch.wiring import watcher_factory

            try:
                factory = watcher_factory([target], RunOptions(), Names())
                status = run_app([target], source_factory=factory)
            finally:
                stop.set()
                writer.join(timeout=5)
    except KeyboardInterrupt:
        status = 130
    finally:
        stop.set()
    print(f"trainwatch demo: the runs are in {target}; watch them again with: trainwatch {target}")
    return status


# ---------------------------------------------------------------- writers


def _append_text(run: Run, events: list[Event]) -> None:
    plan = run.plan
    with open(run.path, "a", encoding="utf-8") as handle:
        for event in events:
            if event.kind == "eval":
                handle.write(f"step {event.step}: train loss {event.loss:.4f}, val loss {event.val:.4f}\n")
                if event.step > 0 and math.isfinite(event.val):
                    handle.write(f"saving checkpoint to out-{plan.slug}\n")
            elif event.kind == "iter":
                mfu = -100.0 if event.mfu is None else event.mfu
                handle.write(f"iter {event.step}: loss {event.loss:.4f}, time {event.ms:.2f}ms, mfu {mfu:.2f}%\n")
            handle.flush()  # line by line, as a training script's stdout


def _write_json(run: Run, now: float) -> None:
    """Rewrite the whole document, in chunks with a flush between (the logger is not atomic)."""
    text = json.dumps(_document(run, now), indent=2)
    third = len(text) // 3
    with open(run.path, "w", encoding="utf-8") as handle:
        for chunk in (text[:third], text[third : 2 * third], text[2 * third :]):
            handle.write(chunk)
            handle.flush()


def _document(run: Run, now: float) -> dict[str, Any]:
    plan = run.plan
    wall = datetime.now()

    def at(t: float) -> str:  # a run-clock second as a wall-clock time (now = now)
        return (wall - timedelta(seconds=now - t)).isoformat()

    config = _config(plan)
    iterations = [_iteration(plan, e) for e in run.done if e.kind == "iter"]
    evals = [e for e in run.done if e.kind == "eval"]
    doc: dict[str, Any] = {
        "run_name": run.path.stem,
        "start_time": at(run.start),
        "config": config,
        "startup_info": {
            "timestamp": at(run.start),
            "model": {"total_params": int(plan.params), "trainable_params": int(plan.params)},
            "optimizer": {"type": "AdamW", "param_groups": 2},
            "config": config,
            "hardware": {
                "gpu_name": plan.gpu_name,
                "num_gpus": plan.gpus,
                "gpu_memory_gb": 79.3 if "A100" in plan.gpu_name else 51.0,
                "precision": "bfloat16",
                "parallelism": "DDP" if plan.gpus > 1 else "single",
            },
        },
        "training_iterations": iterations,
        "eval_steps": [
            {"iter": e.step, "train_loss": e.loss, "val_loss": e.val, "timestamp": at(e.t), "lr": 3e-4} for e in evals
        ],
        "checkpoints": [
            {"iter": e.step, "val_loss": e.val, "path": f"out-{plan.slug}/ckpt.pt", "timestamp": at(e.t + 20)}
            for e in evals
        ],
        "metadata": {"world_size": plan.gpus, "device": "cuda:0", "dtype": "bfloat16", "compile": True},
    }
    end = next((e for e in run.done if e.kind == "end"), None)
    if end is not None:
        doc["end_time"] = at(end.t)
        doc["summary"] = {
            "total_iterations": len(iterations),
            "final_iter": iterations[-1]["iter"],
            "final_train_loss": iterations[-1]["loss"],
            "best_val_loss": min((e.val for e in evals), default=None),
        }
    return doc


def _iteration(plan: Plan, event: Event) -> dict[str, Any]:
    entry: dict[str, Any] = {"iter": event.step, "loss": event.loss, "time_ms": event.ms}
    if event.mfu is None:
        entry["mfu"] = -100.0  # the logger's warm-up sentinel
        return entry
    achieved = event.mfu / 100 * plan.peak_tflops
    entry["mfu"] = {
        "mfu": event.mfu / 100,
        "mfu_percent": event.mfu,
        "flops_achieved": achieved * 1e12 * plan.gpus,
        "flops_per_token": plan.flops_per_token,
        # Per GPU, as this logger reports it.
        "tokens_per_sec": plan.tokens_per_iter / (event.ms / 1000) / plan.gpus,
        "hardware_peak_flops": plan.peak_tflops * 1e12,
        "hardware_peak_tflops": plan.peak_tflops,
        "achieved_tflops": achieved,
        "gpu_name": plan.gpu_name.replace("NVIDIA ", "").replace("RTX ", ""),
        "precision": "bf16",
        "num_gpus": float(plan.gpus),
        "model_params_billion": plan.params / 1e9,
        "architecture": f"{plan.n_layer}L-{plan.n_head}H-{plan.n_embd}D-RoPE-RMS-SwiGLU-PreNorm",
    }
    entry["memory"] = {"allocated_gb": 12.2, "reserved_gb": 31.4, "max_allocated_gb": 28.7}
    return entry


def _config(plan: Plan) -> dict[str, Any]:
    return {
        "out_dir": f"out-{plan.slug}",
        "eval_interval": plan.eval_interval,
        "log_interval": plan.log_interval,
        "eval_iters": 50,
        "eval_only": False,
        "eval_at_start": False,
        "always_save_checkpoint": True,
        "init_from": "scratch",
        "save_log_to_json": True,
        "log_save_interval": plan.log_interval,
        "wandb_log": False,
        "wandb_run_name": plan.slug,
        "dataset": "demo_tokens",
        "gradient_accumulation_steps": plan.accum,
        "batch_size": plan.batch,
        "block_size": plan.block,
        "n_layer": plan.n_layer,
        "n_head": plan.n_head,
        "n_embd": plan.n_embd,
        "learning_rate": 3e-4,
        "max_iters": plan.max_iters,
        "warmup_iters": 200,
        "backend": "nccl",
        "device": "cuda",
        "dtype": "bfloat16",
        "compile": True,
    }


def _preamble(plan: Plan) -> str:
    """What nanoGPT's train.py prints before the first iteration."""
    lines = [
        f"Overriding config with config/{plan.slug.replace('-', '_')}.py:",
        "# trainwatch demo: simulated run, generated data",
        f"out_dir = 'out-{plan.slug}'",
        f"wandb_run_name = '{plan.slug}'",
        "dataset = 'openwebtext'",
        f"batch_size = {plan.batch}",
        f"block_size = {plan.block}",
        f"gradient_accumulation_steps = {plan.accum}",
        f"n_layer = {plan.n_layer}",
        f"n_head = {plan.n_head}",
        f"n_embd = {plan.n_embd}",
        f"max_iters = {plan.max_iters}",
        f"lr_decay_iters = {plan.max_iters}",
        f"eval_interval = {plan.eval_interval}",
        f"log_interval = {plan.log_interval}",
        "learning_rate = 3e-3" if plan.diverge_at is not None else "learning_rate = 6e-4",
        "",
        f"tokens per iteration will be: {plan.tokens_per_iter:,}",
        "Initializing a new model from scratch",
        "defaulting to vocab_size of GPT-2 to 50304 (50257 rounded up for efficiency)",
        f"number of parameters: {plan.params / 1e6:.2f}M",
        "using fused AdamW: True",
        "compiling the model... (takes a ~minute)",
    ]
    return "\n".join(lines) + "\n"


def _stamp(seconds_ago: float) -> str:
    return (datetime.now() - timedelta(seconds=seconds_ago)).strftime("%Y%m%d_%H%M%S")
