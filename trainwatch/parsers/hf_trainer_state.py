"""Hugging Face ``Trainer``'s ``trainer_state.json`` (also TRL and LLaMA-Factory).

One JSON object, pretty-printed with sorted keys (LF or CRLF), rewritten whole
at every checkpoint save and once more by ``save_state()`` after training. Top
level: ``global_step``, ``max_steps``, ``logging_steps``, ``eval_steps``,
``train_batch_size``, ``epoch``, ``num_input_tokens_seen``, ``stateful_callbacks``
(newer) and ``log_history``, a list of dicts of four kinds:

* train entries: ``step``, ``epoch``, ``loss``, ``learning_rate``, ``grad_norm``
  (TRL adds ``num_tokens``, cumulative over all processes, and
  ``mean_token_accuracy``);
* eval entries: ``step``, ``eval_loss`` and any ``eval_<metric>``;
* predict entries: ``predict_*`` with **no** ``step`` (skipped);
* the summary entry, appended when ``trainer.train()`` returns: ``train_loss``,
  ``train_runtime``, ``train_samples_per_second`` ... and no ``loss``.

There are no timestamps and no per-step times, so ``Iteration.time_ms`` stays
``None``. ``train_runtime`` (seconds, the whole ``train()`` call) goes into
``RunInfo.config`` together with the top-level scalars, the only place the
record model has for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from trainwatch.core.records import Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.parsers.base import ParserSpec
from trainwatch.parsers.jsonvalues import as_int, as_num, as_str, loads

FORMAT = "hf_trainer_state"

# log_history keys of an eval entry that are bookkeeping, not a metric.
_EVAL_PREFIX = "eval_"
# Top-level keys whose values are not run settings (or are huge).
_NOT_CONFIG = frozenset({"log_history", "stateful_callbacks", "trial_params"})


def sniff(head: str, filename: str) -> bool:
    """A JSON object with the Trainer's ``log_history`` (not the seed's JSON logs)."""
    text = head.lstrip("\ufeff \t\r\n")
    if not text.startswith("{") or '"training_iterations"' in head:
        return False
    if '"log_history"' in head:
        return True
    # Keys are sorted, so "log_history" sits within the first ~1 KB; the name
    # rescues a state file whose head was cut oddly.
    return filename.endswith("trainer_state.json") and '"global_step"' in head


def parse_document(data: bytes) -> list[Record] | None:
    """All records of one state file, or ``None`` while it is half-written."""
    doc = loads(data)
    if not isinstance(doc, dict):
        return None
    history = doc.get("log_history")
    entries: list[Any] = history if isinstance(history, list) else []

    records: list[Record] = []
    summary: Mapping[str, Any] | None = None
    eval_steps: list[int] = []
    last: Iteration | None = None
    last_index = -1
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        step = as_int(entry.get("step"))
        if step is None or step < 0:
            continue  # predict_* entries carry no step
        if "train_runtime" in entry and "loss" not in entry:
            summary = entry
            continue
        ev = _eval(step, entry)
        if ev is not None:
            records.append(ev)
            eval_steps.append(step)
            if "loss" not in entry:
                continue
        # Two train entries at one step (a custom ``self.log`` beside the
        # regular one) would look like a restart to the aggregator: keep the first.
        if last is not None and step == last.iter:
            continue
        last = _iteration(step, entry)
        last_index = len(records)
        records.append(last)

    global_step = as_int(doc.get("global_step"))
    tokens = as_int(doc.get("num_input_tokens_seen"))
    tokens = tokens if tokens is not None and tokens > 0 else None
    # ``global_step`` counts steps done even when the last ones were not
    # logged (logging_steps does not divide it): let "iterations done" say so.
    if global_step is not None and global_step > 0 and (last is None or global_step > last.iter):
        last = Iteration(iter=global_step, tokens_seen=tokens)
        records.append(last)
    elif last is not None and last.iter == global_step and tokens is not None and last.tokens_seen is None:
        records[last_index] = replace(last, tokens_seen=tokens)

    records.insert(0, _run_info(doc, summary, eval_steps))
    outcome = _outcome(doc, summary, global_step)
    if outcome is not None:
        records.append(outcome)
    return records


def _iteration(step: int, entry: Mapping[str, Any]) -> Iteration:
    tokens = as_int(entry.get("num_tokens"))  # TRL: float, cumulative, all processes
    if tokens is None:
        tokens = as_int(entry.get("num_input_tokens_seen"))
    return Iteration(
        iter=step,
        loss=as_num(entry.get("loss"), keep_nan=True),
        lr=as_num(entry.get("learning_rate")),
        grad_norm=as_num(entry.get("grad_norm"), keep_nan=True),
        tokens_seen=tokens if tokens is not None and tokens > 0 else None,
    )


def _eval(step: int, entry: Mapping[str, Any]) -> Eval | None:
    if not any(key.startswith(_EVAL_PREFIX) for key in entry):
        return None
    metrics = {
        key: number
        for key, value in entry.items()
        if key.startswith(_EVAL_PREFIX) and key != "eval_loss" and (number := as_num(value)) is not None
    }
    return Eval(iter=step, val_loss=as_num(entry.get("eval_loss"), keep_nan=True), metrics=metrics)


def _run_info(doc: Mapping[str, Any], summary: Mapping[str, Any] | None, eval_steps: list[int]) -> RunInfo:
    config: dict[str, object] = {
        key: value
        for key, value in doc.items()
        if key not in _NOT_CONFIG and (value is None or isinstance(value, str | int | float | bool))
    }
    if summary is not None:
        # train_runtime, train_loss, train_samples_per_second, ...: the only
        # timing a state file has, kept for the aggregator.
        config.update((k, v) for k, v in summary.items() if isinstance(v, int | float) and k != "step")
    max_steps = as_int(doc.get("max_steps"))
    logging_steps = as_int(doc.get("logging_steps"))
    batch = as_int(doc.get("train_batch_size"))
    return RunInfo(
        name=as_str(doc.get("trial_name")),
        config=config or None,
        target=max_steps if max_steps is not None and max_steps > 0 else None,
        eval_interval=_eval_interval(as_int(doc.get("eval_steps")), eval_steps),
        log_interval=logging_steps if logging_steps is not None and logging_steps > 0 else None,
        batch_size=batch if batch is not None and batch > 0 else None,
        runtime_s=as_num(summary.get("train_runtime")) if summary is not None else None,
    )


def _eval_interval(eval_steps: int | None, seen: list[int]) -> int | None:
    """``eval_steps`` only when the evals in the log actually follow it.

    The state records ``eval_steps`` whatever the eval strategy is; a run that
    evaluates once per epoch (every 549 steps in the corpus) still says 500.
    """
    if not eval_steps or eval_steps <= 0 or not seen:
        return None
    on_grid = sum(1 for step in seen if step % eval_steps == 0)
    return eval_steps if 2 * on_grid >= len(seen) else None


def _outcome(doc: Mapping[str, Any], summary: Mapping[str, Any] | None, global_step: int | None) -> Outcome | None:
    if summary is not None:
        # The summary entry is appended when train() returns: training is over,
        # whether it ran to max_steps or stopped early.
        runtime = as_num(summary.get("train_runtime"))
        took = f" after {runtime:.0f} s" if runtime is not None else ""
        return Outcome("finished", f"train() returned at step {global_step}{took}")
    callbacks = doc.get("stateful_callbacks")
    control = callbacks.get("TrainerControl") if isinstance(callbacks, dict) else None
    args = control.get("args") if isinstance(control, dict) else None
    if isinstance(args, dict) and args.get("should_training_stop") is True:
        # A checkpoint saved at the step where the loop was told to stop
        # (max_steps reached, or early stopping): no step follows it.
        return Outcome("finished", f"training stopped at step {global_step}")
    return None


SPEC = ParserSpec(format=FORMAT, kind="document", sniff=sniff, parse_document=parse_document)
