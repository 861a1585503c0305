"""The seed's JSON run logs (nanoGPT-derived "enhanced training system").

One JSON document per run, rewritten whole (and not atomically) every
``log_save_interval`` iterations: ``config``, ``startup_info`` (newer runs),
``training_iterations`` (``{iter, loss, time_ms, mfu}``, where ``mfu`` is a
float, ``-100.0`` during warm-up, or a dict with ``mfu_percent``,
per-GPU ``tokens_per_sec`` and the peak it divided by), ``eval_steps``,
``checkpoints``, ``metadata``, ``start_time`` and, once finished, ``end_time``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from trainwatch.parsers.base import ParserSpec
from trainwatch.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo

FORMAT = "llm_tii_json"

# The training loop logs this while its running MFU estimate warms up.
_MFU_SENTINEL = -100.0


def sniff(head: str, filename: str) -> bool:
    """A JSON object carrying the logger's own top-level keys."""
    if not head.lstrip().startswith("{"):
        return False
    return '"training_iterations"' in head or ('"run_name"' in head and '"start_time"' in head)


def parse_document(data: bytes) -> list[Record] | None:
    """All records of one document, or ``None`` if it is not (yet) whole."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("training_iterations", []), list):
        return None
    config = _mapping(doc.get("config"))
    startup = _mapping(doc.get("startup_info"))
    iterations = [it for it in (_iteration(e) for e in doc.get("training_iterations", [])) if it]
    records: list[Record] = [_run_info(doc, config, startup, iterations)]

    evals = [ev for ev in (_eval(e) for e in _list(doc.get("eval_steps"))) if ev]
    checkpoints = [c for c in (_checkpoint(e) for e in _list(doc.get("checkpoints"))) if c]
    # An eval (and the checkpoint after it) runs at the top of its iteration,
    # before that iteration's step is logged: emit them in that order.
    pending: list[tuple[int, int, Record]] = [(e.iter, 0, e) for e in evals]
    pending += [(c.iter if c.iter is not None else -1, 1, c) for c in checkpoints]
    pending.sort(key=lambda item: (item[0], item[1]))
    queue = iter(pending)
    head = next(queue, None)
    for it in (i for i, _ in iterations):
        while head is not None and head[0] <= it.iter:
            records.append(head[2])
            head = next(queue, None)
        records.append(it)
    while head is not None:
        records.append(head[2])
        head = next(queue, None)

    end = _time(doc.get("end_time"))
    if end is not None:
        records.append(RunInfo(end_time=end))
        records.append(Outcome("finished", "end_time recorded", end))
    return records


def _run_info(
    doc: Mapping[str, Any],
    config: Mapping[str, Any],
    startup: Mapping[str, Any],
    iterations: list[tuple[Iteration, Mapping[str, Any]]],
) -> RunInfo:
    hardware = _mapping(startup.get("hardware"))
    model = _mapping(startup.get("model"))
    metadata = _mapping(doc.get("metadata"))
    # The MFU dict of the first logged step states the peak it divided by.
    mfu = next((extra for _, extra in iterations if extra), {})
    params = _int(model.get("total_params"))
    if params is None and _num(mfu.get("model_params_billion")) is not None:
        params = round(_num(mfu.get("model_params_billion")) * 1e9)  # type: ignore[operator]
    # Configs from before ``eval_at_start`` existed ran stock nanoGPT's loop,
    # which evaluates at iteration 0 (their eval_steps show it).
    eval_at_start = config.get("eval_at_start", True if config else None)
    return RunInfo(
        run_id=_str(doc.get("run_name")),
        name=_display_name(config),
        architecture=_str(mfu.get("architecture")),
        config=config or None,
        world_size=_int(metadata.get("world_size")) or _int(hardware.get("num_gpus")),
        params=params,
        gpu=_str(hardware.get("gpu_name")) or _str(mfu.get("gpu_name")),
        dtype=_str(hardware.get("precision")) or _str(config.get("dtype")),
        start_time=_time(doc.get("start_time")),
        target=_int(config.get("max_iters")),
        eval_interval=_int(config.get("eval_interval")),
        eval_at_start=eval_at_start if isinstance(eval_at_start, bool) else None,
        log_interval=_int(config.get("log_interval")),
        batch_size=_int(config.get("batch_size")),
        # This training script divides gradient_accumulation_steps by the
        # world size per GPU: the config value is the global count.
        grad_accum=_int(config.get("gradient_accumulation_steps")),
        grad_accum_per_gpu=_int(config.get("gradient_accumulation_steps_per_gpu")),
        block_size=_int(config.get("block_size")),
        n_layer=_int(config.get("n_layer")),
        n_head=_int(config.get("n_head")),
        n_embd=_int(config.get("n_embd")),
        mfu_peak_tflops=_num(mfu.get("hardware_peak_tflops")),
        tokens_per_sec_scope="gpu",
    )


def _display_name(config: Mapping[str, Any]) -> str | None:
    """A readable name: the output folder, else run name and dataset."""
    out_dir = _str(config.get("out_dir"))
    if out_dir and out_dir.rstrip("/").split("/")[-1] not in ("out", "output", "outputs"):
        name = out_dir.rstrip("/").split("/")[-1]
        return name[4:] if name.startswith(("out-", "out_")) else name
    parts = [p for p in (_str(config.get("wandb_run_name")), _str(config.get("dataset"))) if p]
    return " · ".join(parts) or None


def _iteration(entry: object) -> tuple[Iteration, Mapping[str, Any]] | None:
    if not isinstance(entry, dict):
        return None
    step = _int(entry.get("iter"))
    if step is None or step < 0:
        return None
    raw = entry.get("mfu")
    extra: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    mfu = _num(extra.get("mfu_percent")) if extra else _num(raw)
    if mfu == _MFU_SENTINEL:
        mfu = None
    time_ms = _num(entry.get("time_ms"))
    return (
        Iteration(
            iter=step,
            loss=_num(entry.get("loss"), keep_nan=True),
            time_ms=time_ms if time_ms is not None and time_ms >= 0 else None,
            mfu_pct=mfu,
            tokens_per_sec=_num(extra.get("tokens_per_sec")),
            lr=_num(entry.get("lr")),
        ),
        extra,
    )


def _eval(entry: object) -> Eval | None:
    if not isinstance(entry, dict) or (step := _int(entry.get("iter"))) is None:
        return None
    return Eval(
        iter=step,
        val_loss=_num(entry.get("val_loss"), keep_nan=True),
        train_loss=_num(entry.get("train_loss"), keep_nan=True),
        wall_time=_time(entry.get("timestamp")),
    )


def _checkpoint(entry: object) -> Checkpoint | None:
    if not isinstance(entry, dict):
        return None
    return Checkpoint(
        iter=_int(entry.get("iter")), path=_str(entry.get("path")), wall_time=_time(entry.get("timestamp"))
    )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _num(value: object, keep_nan: bool = False) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if keep_nan or math.isfinite(number) else None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


SPEC = ParserSpec(format=FORMAT, kind="document", sniff=sniff, parse_document=parse_document)
