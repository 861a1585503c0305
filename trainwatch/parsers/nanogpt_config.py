"""nanoGPT's preamble: the configurator's ``key = value`` echo and the enhanced fork's startup report.

What each config key or report row means for ``RunInfo``, and how their
values are written; ``nanogpt_stdout`` applies them line by line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from trainwatch.parsers.text import to_float, to_int

ASSIGN = re.compile(r"(?:Overriding:\s*)?([A-Za-z_]\w*)\s*=\s*(.+)")
_STRING = re.compile(r"""(?:'([^']*)'|"([^"]*)")\s*(?:#.*)?""")
# Enhanced startup report: ``  ├─ Layers:             12``.
REPORT = re.compile(r"(?:[├└]─\s*)?([A-Z][\w ()/-]*?):\s+(.+)")
_INT = re.compile(r"[\d,_]+")

# Config keys (stock nanoGPT and the enhanced fork) and the RunInfo field each feeds.
CONFIG_FIELDS: dict[str, str] = {
    "max_iters": "target",
    "eval_interval": "eval_interval",
    "log_interval": "log_interval",
    "batch_size": "batch_size",
    # nanoGPT divides this by the world size per GPU: the config value is global.
    "gradient_accumulation_steps": "grad_accum",
    "block_size": "block_size",
    "n_layer": "n_layer",
    "n_head": "n_head",
    "n_embd": "n_embd",
    "dtype": "dtype",
    "eval_at_start": "eval_at_start",
    "wandb_run_name": "name",
}
# Other keys of nanoGPT's config, accepted into ``config`` outside a config-file echo.
KNOWN_KEYS = frozenset(CONFIG_FIELDS) | {
    "out_dir", "eval_iters", "eval_only", "always_save_checkpoint", "init_from", "wandb_log",
    "wandb_project", "dataset", "dropout", "bias", "learning_rate", "weight_decay", "beta1",
    "beta2", "grad_clip", "decay_lr", "warmup_iters", "lr_decay_iters", "min_lr", "backend",
    "device", "compile", "arch_preset", "use_zero1", "use_fsdp",
}  # fmt: skip


def count(text: str) -> int | None:
    """``12``, ``1,234`` or ``1_000`` → int; ``None`` for anything else."""
    head = text.split()[0] if text.split() else ""
    return int(head.replace(",", "").replace("_", "")) if _INT.fullmatch(head) and head[0].isdigit() else None


def _first_float(text: str) -> float | None:
    parts = text.split()
    return to_float(parts[0]) if parts else None


# Enhanced startup report rows: label → (RunInfo field, value parser).
REPORT_FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "Total parameters": ("params", count),
    "Layers": ("n_layer", count),
    "Hidden size": ("n_embd", count),
    "Attention heads": ("n_head", count),
    "Sequence length": ("block_size", count),
    "Batch size (micro)": ("batch_size", count),
    # Printed after the script divided it by the world size: a per-GPU count.
    "Gradient accum steps": ("grad_accum_per_gpu", count),
    "Tokens per iteration": ("tokens_per_iter", count),
    "Max iterations": ("target", count),
    "Device": ("gpu", lambda v: None if v.strip().split(":")[0] in ("cuda", "cpu", "mps") else v.strip()),
    "GPUs": ("world_size", count),
    "Precision": ("dtype", str.strip),
    "Hardware peak": ("mfu_peak_tflops", _first_float),
    "Architecture Name": ("architecture", str.strip),
}


def literal(text: str) -> object | None:
    """A config value as the configurator echoes it; ``None`` if not a plain literal."""
    if text[:1] in "'\"":
        m = _STRING.fullmatch(text)
        return None if m is None else (m.group(1) if m.group(1) is not None else m.group(2))
    value = text.split("#", 1)[0].strip()
    if value in ("True", "False"):
        return value == "True"
    try:
        return int(value.replace("_", ""))
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        pass
    # ``gradient_accumulation_steps = 5 * 8`` (stock config/train_gpt2.py).
    factors = [to_int(f) for f in value.split("*")]
    counts = [f for f in factors if f is not None]
    return math.prod(counts) if len(factors) > 1 and len(counts) == len(factors) else None


def field_value(field: str, value: object) -> object | None:
    """``value`` if it has the type RunInfo's ``field`` wants."""
    if field in ("dtype", "name"):
        return value if isinstance(value, str) and value else None
    if field == "eval_at_start":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value
