"""Run settings in a tracker's run config, whatever trainer logged them.

W&B's ``config.yaml`` (``parsers.wandb_files``) holds what the training
script handed ``wandb.init(config=...)`` or ``wandb.config.update``: HF's
``WandbCallback`` the model config overlaid with ``TrainingArguments.to_dict()``
(``per_device_train_batch_size``, ``gradient_accumulation_steps`` per process,
``max_steps`` -1 when epochs decide, ``bf16``) and ``model/num_parameters``;
Megatron ``vars(args)`` (``train_iters``, ``micro_batch_size`` and
``global_batch_size``, ``seq_length``, ``world_size``); nanoGPT its globals
(``max_iters``, ``batch_size``, a *global* ``gradient_accumulation_steps``,
``block_size``); nanochat its globals (``num_iterations``,
``device_batch_size``, ``total_batch_size`` in tokens, ``max_seq_len``);
torchtitan its nested job config (``training.steps``, ``training.seq_len``).
Each setting is looked up under the names these use, most specific first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from trainwatch.core.records import RunInfo

#: Where trainers put each setting, most specific first (flattened keys:
#: nested mappings and ``/`` both become ``.``).
_TARGET = (
    "max_steps",  # HF, Lightning (-1: epochs decide)
    "max_iters",  # nanoGPT
    "num_iterations",  # nanochat, modded-nanogpt (-1: derived from a data ratio)
    "train_iters",  # Megatron
    "max_train_steps",  # accelerate's examples
    "total_steps",
    "num_training_steps",
    "total_iters",
    "trainer.max_steps",  # NeMo, Lightning configs
    "training.steps",  # torchtitan
    "training.max_steps",
)
_BATCH = (
    "per_device_train_batch_size",  # HF
    "device_batch_size",  # nanochat
    "micro_batch_size",  # Megatron
    "train_micro_batch_size_per_gpu",  # DeepSpeed
    "batch_size",  # nanoGPT, Lightning modules
    "training.local_batch_size",  # torchtitan
    "training.batch_size",
)
_BLOCK = (
    "block_size",  # nanoGPT
    "max_seq_len",  # nanochat
    "seq_length",  # Megatron
    "max_seq_length",  # TRL (older), LLaMA-Factory
    "seq_len",
    "sequence_length",
    "sequence_len",  # axolotl
    "cutoff_len",  # LLaMA-Factory
    "context_length",
    "training.seq_len",  # torchtitan
)
_WORLD = ("world_size", "ddp_world_size")
_LAYERS = ("n_layer", "num_layers", "num_hidden_layers", "n_layers", "depth", "text_config.num_hidden_layers")
_HEADS = ("n_head", "num_attention_heads", "num_heads", "n_heads", "text_config.num_attention_heads")
_EMBD = ("n_embd", "hidden_size", "d_model", "n_embed", "model_dim", "text_config.hidden_size")
_PARAMS = ("model.num_parameters", "num_params", "n_params", "num_parameters", "total_params")
_EVAL = ("eval_interval", "eval_every")  # nanoGPT and Megatron, nanochat
_LOG = ("log_interval", "log_every", "metrics.log_freq")  # nanoGPT and Megatron, nanochat, torchtitan
_NAME = ("wandb_run_name", "wandb_exp_name", "run_name", "experiment_name", "run")
_DTYPE = ("mixed_precision", "dtype", "precision", "params_dtype", "training.mixed_precision_param", "torch_dtype")
#: Lightning's precision flags, and accelerate's "no".
_DTYPE_NAMES = {"16": "fp16", "16-mixed": "fp16", "16-true": "fp16", "32": "float32", "32-true": "float32"}
_DTYPE_NAMES |= {"no": "float32", "bf16-mixed": "bf16", "bf16-true": "bf16"}


def settings(values: Mapping[str, object]) -> RunInfo:
    """RunInfo from a run config's flattened values, whatever trainer logged them."""

    def pick(*keys: str) -> int | None:
        return next((n for key in keys if (n := count(values.get(key))) is not None), None)

    hf = "per_device_train_batch_size" in values
    accum = pick("gradient_accumulation_steps", "accumulate_grad_batches", "trainer.accumulate_grad_batches")
    per_gpu = pick("gradient_accumulation_steps_per_gpu")
    micro, total = pick("micro_batch_size"), pick("global_batch_size")
    grad_accum: int | None = None
    if per_gpu is None and not hf and {"max_iters", "block_size", "batch_size"} <= values.keys():
        grad_accum, accum = accum, None  # nanoGPT's count is global (train.py divides it by the world size)
    elif accum is None and micro and total and total % micro == 0:
        grad_accum = total // micro  # Megatron: micro-batches over all data-parallel ranks, as its console parser
    block = pick(*_BLOCK)
    if block is None and ("dataset_text_field" in values or "packing" in values):
        block = pick("max_length")  # TRL's SFTConfig; elsewhere max_length is a generation setting
    return RunInfo(
        name=_name(values),
        config=dict(values) or None,
        world_size=pick(*_WORLD),
        params=pick(*_PARAMS),
        dtype=_dtype(values),
        target=pick(*_TARGET),
        eval_interval=_eval_interval(values, pick(*_EVAL)),
        log_interval=pick(*_LOG) or _hf_interval(values, "logging_steps", ("logging_strategy",)),
        batch_size=pick(*_BATCH),
        grad_accum=grad_accum,
        grad_accum_per_gpu=per_gpu or accum,  # HF, accelerate, DeepSpeed, Lightning: per process
        block_size=block,
        tokens_per_iter=_tokens(values, block),
        n_layer=pick(*_LAYERS),
        n_head=pick(*_HEADS),
        n_embd=pick(*_EMBD),
    )


def _tokens(values: Mapping[str, object], block: int | None) -> int | None:
    """Tokens per step where the config states them: nanochat's ``total_batch_size``
    (tokens, checked against its per-rank micro-batch), torchtitan's global batch × sequence."""
    total, device = count(values.get("total_batch_size")), count(values.get("device_batch_size"))
    if total and device and block and "max_seq_len" in values and total % (device * block) == 0:
        return total
    sequences = count(values.get("training.global_batch_size"))
    seq_len = count(values.get("training.seq_len"))
    return sequences * seq_len if sequences and seq_len else None


def _eval_interval(values: Mapping[str, object], interval: int | None) -> int | None:
    """Steps between evals: none where the config runs no eval batches (Megatron's ``eval_iters 0``)."""
    if "eval_iters" in values and count(values["eval_iters"]) is None:
        return None
    return interval or _hf_interval(values, "eval_steps", ("eval_strategy", "evaluation_strategy"))


def _hf_interval(values: Mapping[str, object], key: str, strategies: tuple[str, ...]) -> int | None:
    """HF's ``eval_steps`` / ``logging_steps``, which count only under the ``steps`` strategy."""
    strategy = next((values[s] for s in strategies if s in values), None)
    if strategy not in ("steps", "IntervalStrategy.STEPS"):
        return None
    steps = count(values.get(key))
    if steps is None and key == "eval_steps":
        steps = count(values.get("logging_steps"))  # HF: "defaults to the same value as logging_steps"
    return steps


def _name(values: Mapping[str, object]) -> str | None:
    for key in _NAME:
        name = values.get(key)
        # HF names a run after its output folder unless told; nanochat's "dummy" is no name.
        if isinstance(name, str) and name.strip() and name not in (values.get("output_dir"), "dummy"):
            return name.strip()
    return None


def _dtype(values: Mapping[str, object]) -> str | None:
    if values.get("bf16") is True:  # HF's TrainingArguments
        return "bf16"
    if values.get("fp16") is True:
        return "fp16"
    for key in _DTYPE:
        value = values.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # Lightning's precision=16
        if isinstance(value, str) and value.strip():
            text = value.strip().removeprefix("torch.")
            return _DTYPE_NAMES.get(text, text)
    return None


def count(value: object) -> int | None:
    """A positive whole number (``-1`` and ``0`` say "not set" in these configs)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    number = int(value)
    return number if 0 < number < 2**63 else None
