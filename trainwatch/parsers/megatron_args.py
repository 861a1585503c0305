"""Megatron's argument dump (``------ arguments ------`` … ``-- end of arguments --``): what it says of the run.

Megatron-LM and Megatron-DeepSpeed print every argument as ``name ....... value``
at start-up; the few that describe the run (size, batch, sequence length,
iterations, precision) become its ``RunInfo``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from trainwatch.core.records import RunInfo
from trainwatch.parsers.text import to_float

ARG = re.compile(r"^(\w+) \.{2,}(?: (.*))?$")
# Argument-dump keys the RunInfo is made of.
WANTED_ARGS = frozenset(
    {
        "world_size",
        "num_layers",
        "encoder_num_layers",
        "hidden_size",
        "num_attention_heads",
        "seq_length",
        "encoder_seq_length",
        "train_iters",
        "global_batch_size",
        "micro_batch_size",
        "log_interval",
        "eval_interval",
        "eval_iters",
        "tensor_model_parallel_size",
        "pipeline_model_parallel_size",
        "bf16",
        "fp16",
        "params_dtype",
        "wandb_exp_name",
    }
)
#: An argument dump without its end banner stops being read after this many lines.
MAX_ARG_LINES = 5000


def as_int(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(text)  # takes the padding spaces
    except ValueError:
        number = to_float(text.strip())
        return int(number) if number is not None and math.isfinite(number) and number.is_integer() else None


def run_info(args: Mapping[str, str]) -> RunInfo:
    """The run facts of a whole argument dump (``args``: wanted name -> value text)."""
    world = as_int(args.get("world_size"))
    seq = as_int(args.get("seq_length")) or as_int(args.get("encoder_seq_length"))
    gbs = as_int(args.get("global_batch_size"))
    mbs = as_int(args.get("micro_batch_size"))
    target = as_int(args.get("train_iters"))
    tokens = gbs * seq if gbs and seq else None
    if args.get("bf16") == "True":
        dtype: str | None = "bfloat16"
    elif args.get("fp16") == "True":
        dtype = "float16"
    else:
        dtype = (args.get("params_dtype") or "").removeprefix("torch.") or None
    name = args.get("wandb_exp_name") or None
    # Megatron validates only with eval_iters > 0 (and a validation split).
    eval_iters = as_int(args.get("eval_iters"))
    eval_interval = as_int(args.get("eval_interval")) if eval_iters else None
    return RunInfo(
        name=name,
        world_size=world,
        dtype=dtype,
        target=target or None,
        log_interval=as_int(args.get("log_interval")),
        eval_interval=eval_interval or None,
        # Validation runs after iteration i is logged: its time lands
        # in the next iteration's "elapsed time per iteration".
        eval_timing="next",
        # evaluate() runs eval_iters global batches forward only; a step runs
        # one forward and backward (about 3 forwards).
        eval_cost_steps=eval_iters / 3 if eval_iters else None,
        # batch_size × grad_accum × block_size = tokens per step, the
        # identity the aggregator's config check uses: grad_accum is the
        # global number of micro-batches (DP ranks × accumulation).
        batch_size=mbs,
        grad_accum=gbs // mbs if gbs and mbs and gbs % mbs == 0 else None,
        block_size=seq,
        tokens_per_iter=tokens,
        n_layer=as_int(args.get("num_layers")) or as_int(args.get("encoder_num_layers")),
        n_head=as_int(args.get("num_attention_heads")),
        n_embd=as_int(args.get("hidden_size")),
        config=dict(args) or None,
    )
