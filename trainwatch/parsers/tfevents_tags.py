"""What the tags of a TensorBoard event file mean, trainer by trainer.

Each writer's tags, from the code that writes them:

* Hugging Face ``Trainer`` (``integrations.TensorBoardCallback``): ``on_log``
  puts ``eval/`` before ``eval_*`` keys, ``test/`` before ``test_*`` and
  ``train/`` before the rest, and writes each number with ``add_scalar(k, v,
  global_step)``: ``train/loss``, ``train/grad_norm``, ``train/learning_rate``,
  ``train/epoch``, ``eval/loss``, ``eval/<metric>``, and, when ``train()``
  returns, ``train/train_runtime``, ``train/train_loss`` (the run's mean),
  ``train/train_samples_per_second`` ... ``on_train_begin`` writes
  ``add_text("args", args.to_json_string())`` and ``add_text("model_config",
  ...)``, i.e. tags ``args/text_summary`` and ``model_config/text_summary``.
* torchtitan (``components/metrics.py``, ``MetricsProcessor.log``): one
  ``add_scalar`` per key, every logged step: ``loss_metrics/global_avg_loss``,
  ``grad_norm``, ``throughput(tps)`` (tokens/s per device), ``mfu(%)``,
  ``time_metrics/end_to_end(s)`` (seconds per step), ``n_tokens_seen`` (older:
  ``ntokens_seen``), ``lr``, ``memory/*``; ``validation_metrics/loss`` on evals.
* Megatron-LM (``training.py``, ``training_log`` and
  ``evaluate_and_print_results``): ``lm loss`` (each key of the loss dict),
  ``learning-rate``, ``grad-norm``, ``iteration-time`` (seconds per
  iteration), ``batch-size``, and ``<key> validation``; every one of them also
  ``<tag> vs samples``, whose step is the sample count, not the iteration.
  ``_write_args_to_tensorboard`` writes each argument as its own text
  (``train_iters/text_summary`` ...).
* NeMo and PyTorch Lightning (``TensorBoardLogger.log_metrics``): whatever
  ``self.log`` names: ``reduced_train_loss``, ``train_step_timing in s``
  (older ``train_step_timing``), ``lr``, ``val_loss`` for NeMo;
  ``train_loss`` (or ``train_loss_step`` / ``train_loss_epoch`` when logged
  both ways), ``val_loss`` for Lightning, which adds ``epoch`` to every call.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Mapping
from typing import Any

from trainwatch.core.records import RunInfo

# Roles a tag can play. Train roles go into a step's Iteration.
LOSS, LR, GRAD_NORM, STEP_S, MFU, TPS, TOKENS = "loss", "lr", "grad_norm", "step_s", "mfu", "tps", "tokens"
VAL_LOSS, EVAL_METRIC = "val_loss", "eval_metric"
RUNTIME = "runtime"  # HF's train/train_runtime: train() returned
IGNORED = "ignored"
TRAIN_ROLES = frozenset({LOSS, LR, GRAD_NORM, STEP_S, MFU, TPS, TOKENS})
EVAL_ROLES = frozenset({VAL_LOSS, EVAL_METRIC})

#: Known tags, each with its role. Where one step carries two tags of a role,
#: the one listed first wins.
KNOWN: dict[str, str] = {
    # Hugging Face Trainer
    "train/loss": LOSS,
    "train/learning_rate": LR,
    "train/grad_norm": GRAD_NORM,
    "train/num_input_tokens_seen": TOKENS,
    "train/num_tokens": TOKENS,  # TRL
    "eval/loss": VAL_LOSS,
    "train/train_runtime": RUNTIME,
    "train/epoch": IGNORED,
    "train/train_loss": IGNORED,  # the mean over the run, not a step's loss
    "train/total_flos": IGNORED,
    # torchtitan
    "loss_metrics/global_avg_loss": LOSS,
    "grad_norm": GRAD_NORM,
    "lr": LR,
    "mfu(%)": MFU,
    "throughput(tps)": TPS,
    "n_tokens_seen": TOKENS,
    "ntokens_seen": TOKENS,
    "time_metrics/end_to_end(s)": STEP_S,
    "validation_metrics/loss": VAL_LOSS,
    "loss_metrics/global_max_loss": IGNORED,
    # Megatron-LM
    "lm loss": LOSS,
    "learning-rate": LR,
    "grad-norm": GRAD_NORM,
    "iteration-time": STEP_S,
    "lm loss validation": VAL_LOSS,
    "loss-scale": IGNORED,  # the fp16 loss scaler, not a loss
    # NeMo
    "reduced_train_loss": LOSS,
    "train_step_timing in s": STEP_S,
    "train_step_timing": STEP_S,
    # PyTorch Lightning and plain SummaryWriter scripts
    "train_loss_step": LOSS,
    "train_loss": LOSS,
    "loss": LOSS,
    "train/loss_step": LOSS,
    "learning_rate": LR,
    "val_loss": VAL_LOSS,
    "val/loss": VAL_LOSS,
    "validation loss": VAL_LOSS,
    "loss_scale": IGNORED,
    "epoch": IGNORED,
    "hp_metric": IGNORED,
}
RANK = {tag: rank for rank, tag in enumerate(KNOWN)}
#: Tags only Lightning's logger writes (NeMo logs through it): their steps are
#: 0-based step indices (see ``TfeventsParser``).
LIGHTNING_TAGS = frozenset({"epoch", "hp_metric", "reduced_train_loss", "train_step_timing in s", "train_step_timing"})
#: Evaluation tags by prefix or suffix, as their writers name them.
_EVAL_PREFIXES = ("eval/", "validation_metrics/", "val_", "val/", "validation/")
_EVAL_SUFFIX = " validation"  # Megatron: "<loss key> validation", "... validation ppl"
#: Megatron's second x-axis: the same value again against the sample count.
_NOT_STEPS = (" vs samples", " vs steps")
_NOT_TRAIN_LOSS = ("val", "eval", "test")


def classify(tag: str) -> str | None:
    """The role of ``tag`` from the tables; ``None`` for a tag they do not know."""
    role = KNOWN.get(tag)
    if role is not None:
        return role
    if tag.endswith(_NOT_STEPS):
        return IGNORED
    if tag.startswith(_EVAL_PREFIXES) or _EVAL_SUFFIX in tag:
        return EVAL_METRIC
    if tag.startswith(("train/train_", "test/")):
        return IGNORED  # HF's end-of-run summary and predict() metrics
    return None


def is_loss_like(tag: str) -> bool:
    """Could an unknown tag be the train loss (``Loss/train``, ``loss_total``)?"""
    low = tag.lower()
    return "loss" in low and not any(word in low for word in _NOT_TRAIN_LOSS)


_f32 = struct.Struct("<f")


def short_f32(value: float) -> float:
    """The shortest decimal that reads back as the same float32: what the writer
    had before ``add_scalar`` stored it (HF's ``round(loss, 4)`` = 2.0865 is
    stored as 2.0864999294281006)."""
    if not math.isfinite(value):
        return value
    try:
        stored = _f32.pack(value)
        for digits in (6, 7, 8):
            candidate = float(f"{value:.{digits}g}")
            if _f32.pack(candidate) == stored:
                return candidate
    except OverflowError:
        pass
    return float(f"{value:.9g}")


# ------------------------------------------------------------ text summaries


def run_info_from_text(tag: str, text: str, batch: dict[str, int]) -> RunInfo | None:
    """Run settings in a text summary: HF's ``args`` and ``model_config``
    JSON, or one of Megatron's per-argument texts (``batch`` keeps its two
    batch sizes until both are known)."""
    name = tag.removesuffix("/text_summary")
    if name == "args":
        return _hf_args(_json(text))
    if name == "model_config":
        return _hf_model(_json(text))
    return _megatron_arg(name, text.strip(), batch)


def _json(text: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _count(value: Any) -> int | None:
    """A positive whole number, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return int(value) if value > 0 and value == int(value) else None


def _hf_args(args: Mapping[str, Any]) -> RunInfo | None:
    if not args:
        return None
    logging_steps = _count(args.get("logging_steps")) if args.get("logging_strategy", "steps") == "steps" else None
    strategy = args.get("eval_strategy", args.get("evaluation_strategy"))
    # HF: eval_steps "defaults to the same value as logging_steps if not set"
    # (a float below 1 is a fraction of the run: not a step count).
    raw = args.get("eval_steps")
    eval_steps = (logging_steps if raw is None else _count(raw)) if strategy == "steps" else None
    run_name = args.get("run_name")
    dtype = "bf16" if args.get("bf16") is True else "fp16" if args.get("fp16") is True else None
    return RunInfo(
        # HF names a run after its output folder unless told otherwise.
        name=run_name if isinstance(run_name, str) and run_name and run_name != args.get("output_dir") else None,
        config={k: v for k, v in args.items() if v is None or isinstance(v, str | int | float | bool)},
        target=_count(args.get("max_steps")),  # -1: epochs decide, the step count is not stated
        log_interval=logging_steps,
        eval_interval=eval_steps,
        batch_size=_count(args.get("per_device_train_batch_size")),
        # Per process: the world size is not in the args.
        grad_accum_per_gpu=_count(args.get("gradient_accumulation_steps")),
        block_size=_count(args.get("max_seq_length")) or _count(args.get("max_length")),  # TRL's SFTConfig
        dtype=dtype,
    )


def _hf_model(config: Mapping[str, Any]) -> RunInfo | None:
    if not config:
        return None
    text = config.get("text_config")
    inner: Mapping[str, Any] = text if isinstance(text, dict) else {}

    def pick(key: str) -> int | None:
        return _count(config.get(key)) or _count(inner.get(key))

    archs = config.get("architectures")
    dtype = config.get("torch_dtype", config.get("dtype"))
    return RunInfo(
        architecture=archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None,
        n_layer=pick("num_hidden_layers"),
        n_head=pick("num_attention_heads"),
        n_embd=pick("hidden_size"),
        dtype=dtype if isinstance(dtype, str) else None,
    )


#: Megatron arguments read one by one, and what each says.
_MEGATRON_ARGS: dict[str, Callable[[int], RunInfo]] = {
    "train_iters": lambda n: RunInfo(target=n),
    "log_interval": lambda n: RunInfo(log_interval=n),
    "eval_interval": lambda n: RunInfo(eval_interval=n),
    "seq_length": lambda n: RunInfo(block_size=n),
    "world_size": lambda n: RunInfo(world_size=n),
    "num_layers": lambda n: RunInfo(n_layer=n),
    "num_attention_heads": lambda n: RunInfo(n_head=n),
    "hidden_size": lambda n: RunInfo(n_embd=n),
}


def _megatron_arg(name: str, text: str, batch: dict[str, int]) -> RunInfo | None:
    value = _count(int(text)) if text.isdigit() else None
    if value is not None and name in ("micro_batch_size", "global_batch_size"):
        batch[name] = value
        micro, total = batch.get("micro_batch_size"), batch.get("global_batch_size")
        if micro and total and total % micro == 0:
            # As the Megatron stdout parser: batch_size × grad_accum × block_size
            # = tokens per step, grad_accum counting micro-batches over all DP ranks.
            return RunInfo(batch_size=micro, grad_accum=total // micro)
        return None
    read = _MEGATRON_ARGS.get(name)
    if read is not None and value is not None:
        return read(value)
    if name == "params_dtype" and text.startswith("torch."):
        return RunInfo(dtype=text.removeprefix("torch."))
    return None
