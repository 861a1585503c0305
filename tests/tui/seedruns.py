"""Four runs in the seed's JSON format, written by the tests themselves.

The app tests and the SVG snapshots need runs that look like real ones
(four statuses, evals, checkpoints, an MFU with a caveat) and must mean the
same on a fresh clone without ``../shared/corpus``. These documents follow
the grammar of the training script's JSON logger as the corpus shows it
(``training_iterations`` every ``log_interval`` steps with ``time_ms`` and an
``mfu`` dict whose ``tokens_per_sec`` is per GPU; ``-100.0`` for the warm-up
step; ``eval_steps`` and ``checkpoints`` with timestamps; ``end_time`` and
``summary`` once finished), with the shapes of the four seed runs: their
batch, accumulation, sequence, GPUs, step times, eval passes and the 310
TFLOPS peak they divided by. Values are deterministic (a seeded generator),
so screens are too.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

PEAK_TFLOPS = 310.0  # what the seed's logger divided by (the A6000's sparse BF16 peak)


@dataclass(frozen=True)
class SeedPlan:
    run_id: str
    out_dir: str
    dataset: str
    batch: int
    accum: int  # global, as the seed's config states it
    params: int
    layers: int
    heads: int
    embd: int
    step_s: float  # an ordinary step
    first_s: float  # the warm-up step (compile)
    eval_s: float  # a step that includes an eval pass
    mfu_pct: float  # at step_s
    loss_start: float
    loss_end: float  # at max_iters
    start: datetime
    max_iters: int = 2000
    eval_interval: int = 1000
    log_interval: int = 10
    block: int = 2048
    world: int = 2

    @property
    def tokens_per_iter(self) -> int:
        return self.batch * self.accum * self.block


PLANS: dict[str, SeedPlan] = {
    p.run_id: p
    for p in (
        SeedPlan(
            "run_20251113_225009", "out-qwen3-1.8b-optimal", "slimpajama_6b_qwen3", 2, 96, 1_829_140_480,
            24, 16, 2048, 28.2, 67.1, 345.4, 27.6, 12.17, 1.88, datetime(2025, 11, 13, 22, 50, 9, 271150),
        ),
        SeedPlan(
            "run_20251113_095419", "out-gpt2-1.36b", "slimpajama_6b_gpt2", 4, 32, 1_294_159_104,
            18, 18, 2304, 11.85, 34.9, 231.3, 30.6, 11.2, 4.23, datetime(2025, 11, 13, 9, 54, 19, 673422),
        ),
        SeedPlan(
            "run_20251112_122613", "out-llama3-2.2b-chinchilla", "slimpajama_6b_llama3", 2, 64, 2_200_000_000,
            28, 16, 2560, 25.37, 25.1, 399.6, 24.7, 12.52, 2.22, datetime(2025, 11, 12, 12, 26, 13, 104141),
        ),
        SeedPlan(
            "run_20251110_174040", "out-llama-1.36b", "slimpajama_6b_llama", 5, 16, 1_294_159_104,
            18, 18, 2304, 7.68, 35.6, 272.1, 30.2, 10.86, 3.40, datetime(2025, 11, 10, 17, 40, 40, 744600),
        ),
    )
}  # fmt: skip


def _loss(plan: SeedPlan, step: int, rng: random.Random) -> float:
    """A power-law decay from ``loss_start`` to ``loss_end`` at ``max_iters``, with 1 % noise."""

    def shape(i: float) -> float:
        return (1 + i / 20) ** -0.8

    far = shape(plan.max_iters)
    clean = plan.loss_end + (plan.loss_start - plan.loss_end) * (shape(step) - far) / (1 - far)
    return clean * (1 + rng.uniform(-0.01, 0.01)) if step else plan.loss_start


def _config(plan: SeedPlan) -> dict[str, Any]:
    return {
        "out_dir": plan.out_dir,
        "eval_interval": plan.eval_interval,
        "log_interval": plan.log_interval,
        "eval_iters": 50,
        "eval_only": False,
        "eval_at_start": False,
        "always_save_checkpoint": False,
        "init_from": "scratch",
        "save_log_to_json": True,
        "wandb_log": False,
        "dataset": plan.dataset,
        "gradient_accumulation_steps": plan.accum,
        "batch_size": plan.batch,
        "block_size": plan.block,
        "n_layer": plan.layers,
        "n_head": plan.heads,
        "n_embd": plan.embd,
        "dropout": 0.0,
        "bias": False,
        "learning_rate": 0.0003,
        "max_iters": plan.max_iters,
        "backend": "nccl",
        "use_zero1": True,
        "device": "cuda",
        "dtype": "bfloat16",
        "compile": True,
    }


def _mfu(plan: SeedPlan, seconds: float) -> dict[str, Any]:
    pct = plan.mfu_pct * plan.step_s / seconds
    per_gpu = plan.tokens_per_iter / plan.world / seconds
    flops_per_token = 6.0 * plan.params
    return {
        "mfu": pct / 100,
        "mfu_percent": pct,
        "flops_achieved": pct / 100 * PEAK_TFLOPS * 1e12,
        "flops_per_token": flops_per_token,
        "tokens_per_sec": per_gpu,
        "hardware_peak_flops": PEAK_TFLOPS * 1e12,
        "hardware_peak_tflops": PEAK_TFLOPS,
        "achieved_tflops": pct / 100 * PEAK_TFLOPS,
        "gpu_name": "A6000",
        "precision": "bf16",
        "num_gpus": float(plan.world),
        "model_params_billion": plan.params / 1e9,
        "architecture": f"{plan.layers}L-{plan.heads}H-{plan.embd}D-RoPE-RMS-SwiGLU-PreNorm",
    }


def document(run_id: str, upto: int | None = None) -> dict[str, Any]:
    """The seed JSON log of ``run_id`` as it stood at iteration ``upto`` (``None``: finished)."""
    plan = PLANS[run_id]
    rng = random.Random(run_id)
    last = plan.max_iters if upto is None else min(upto, plan.max_iters)
    iterations, evals, checkpoints = [], [], []
    clock = plan.start
    for step in range(0, last + 1, plan.log_interval):
        is_eval = step > 0 and step % plan.eval_interval == 0
        seconds = plan.first_s if step == 0 else plan.eval_s if is_eval else plan.step_s
        seconds *= 1 + rng.uniform(-0.004, 0.004)
        loss = _loss(plan, step, rng)
        # Each logged step stands for the log_interval steps before it.
        clock += timedelta(seconds=seconds + (plan.log_interval - 1) * plan.step_s if step else seconds)
        if is_eval:
            val = loss * (1 + rng.uniform(-0.02, 0.0))
            stamp = (clock - timedelta(seconds=seconds / 2)).isoformat()
            evals.append({"iter": step, "train_loss": loss, "val_loss": val, "timestamp": stamp, "lr": 0.00015})
            saved = (clock + timedelta(seconds=4)).isoformat()
            checkpoints.append({"iter": step, "val_loss": val, "path": f"{plan.out_dir}/ckpt.pt", "timestamp": saved})
        memory = {"allocated_gb": 12.2, "reserved_gb": 31.4, "max_allocated_gb": 28.7, "max_reserved_gb": 31.4}
        mfu: Any = -100.0 if step == 0 else _mfu(plan, seconds)
        iterations.append({"iter": step, "loss": loss, "time_ms": seconds * 1000, "mfu": mfu, "memory": memory})
    config = _config(plan)
    doc: dict[str, Any] = {
        "run_name": run_id,
        "start_time": plan.start.isoformat(),
        "config": config,
        "startup_info": {
            "timestamp": plan.start.isoformat(),
            "model": {"total_params": plan.params, "trainable_params": plan.params},
            "optimizer": {"type": "ZeroRedundancyOptimizer", "param_groups": 2},
            "config": config,
            "hardware": {"gpu_name": "NVIDIA RTX A6000", "num_gpus": plan.world, "precision": "bfloat16"},
        },
        "training_iterations": iterations,
        "eval_steps": evals,
        "checkpoints": checkpoints,
        "metadata": {"world_size": plan.world, "device": "cuda:0", "dtype": "bfloat16", "compile": True},
    }
    if upto is None:
        doc["end_time"] = (clock + timedelta(seconds=30)).isoformat()
        valid = [i["mfu"]["mfu_percent"] for i in iterations if isinstance(i["mfu"], dict)]
        doc["summary"] = {
            "total_iterations": len(iterations),
            "final_iter": last,
            "final_train_loss": iterations[-1]["loss"],
            "best_val_loss": min((e["val_loss"] for e in evals), default=math.nan),
            "avg_time_ms": sum(i["time_ms"] for i in iterations) / len(iterations),
            "avg_mfu": sum(valid) / len(valid),
            "total_eval_steps": len(evals),
            "total_checkpoints": len(checkpoints),
        }
    return doc
