"""The seed's JSON run logs (nanoGPT-derived "enhanced training system").

One JSON document per run, rewritten whole (and not atomically) every
``log_save_interval`` iterations: ``config``, ``startup_info`` (newer runs),
``training_iterations`` (``{iter, loss, time_ms, mfu}``, where ``mfu`` is a
float, ``-100.0`` during warm-up, or a dict with ``mfu_percent``,
per-GPU ``tokens_per_sec`` and the peak it divided by), ``eval_steps``,
``checkpoints``, ``metadata``, ``start_time`` and, once finished, ``end_time``.

A rewrite usually only adds entries to ``training_iterations`` and changes the
small tail after it. ``parse_document_resumable`` says where the entries end
(``resume_at``); ``parse_document_from`` then reads only the bytes after that
point: the new entries and the new tail (see ``DocumentParse``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.parsers.base import DocumentParse, ParserSpec
from trainwatch.parsers.growing_json import array_bounds, entries_end, load_object
from trainwatch.parsers.jsonvalues import as_int, as_num, as_str

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
    doc = _load(data)
    if doc is None:
        return None
    iterations, first_mfu, _ = _iterations(_list(doc.get("training_iterations")))
    events = _events(_list(doc.get("eval_steps")), _list(doc.get("checkpoints")))
    merged, consumed = _merge(iterations, events, 0)
    return [_run_info(doc, first_mfu), *merged, *_tail(doc, events, consumed)]


@dataclass(frozen=True, slots=True)
class _Resume:
    """What ``parse_document_from`` needs to know about the bytes it skips."""

    head: dict[str, Any]  # the top-level keys before training_iterations
    after: str | None  # the first key after it, to find where the entries end
    entries: int  # entries in training_iterations so far
    first_mfu: Mapping[str, Any]  # the first MFU dict logged (RunInfo reads it)
    max_iter: int  # largest logged iteration so far (-1: none)
    consumed: int  # events already merged in among the iterations
    events: list[tuple[int, int, Record]]  # evals and checkpoints, in merge order
    raw_evals: list[Any]  # as last read, to reuse their records when unchanged
    raw_checkpoints: list[Any]
    tail: bytes  # the bytes from the array's closing bracket on, as last read ...
    doc: dict[str, Any]  # ... and every top-level key but the entries (head and tail)


def parse_document_resumable(data: bytes) -> DocumentParse | None:
    """Like ``parse_document``, split so that a rewrite can be read from ``resume_at``.

    ``records`` start with a ``RunInfo`` holding only what classifying
    iterations needs (from ``config``, which lies before the entries); the
    full ``RunInfo`` leads ``tail``. Fed in order, records then tail leave an
    aggregator exactly as ``parse_document``'s records do.
    """
    doc = _load(data)
    if doc is None:
        return None
    entries = _list(doc.get("training_iterations"))
    iterations, first_mfu, max_iter = _iterations(entries)
    raw_evals, raw_checkpoints = _list(doc.get("eval_steps")), _list(doc.get("checkpoints"))
    events = _events(raw_evals, raw_checkpoints)
    merged, consumed = _merge(iterations, events, 0)
    info = _run_info(doc, first_mfu)
    records: list[Record] = [RunInfo(eval_interval=info.eval_interval, eval_at_start=info.eval_at_start), *merged]
    tail = [info, *_tail(doc, events, consumed)]
    keys = list(doc)
    bounds = array_bounds(data, keys, "training_iterations", entries)
    if bounds is None:
        return DocumentParse(records, tail)
    head_end, resume_at = bounds
    index = keys.index("training_iterations")
    state = _Resume(
        head={k: doc[k] for k in keys[:index]},
        after=keys[index + 1] if index + 1 < len(keys) else None,
        entries=len(entries),
        first_mfu=first_mfu,
        max_iter=max_iter,
        consumed=consumed,
        events=events,
        raw_evals=raw_evals,
        raw_checkpoints=raw_checkpoints,
        tail=data[resume_at:].lstrip(),
        doc={k: v for k, v in doc.items() if k != "training_iterations"},
    )
    return DocumentParse(records, tail, resume_at=resume_at, head_end=head_end, state=state)


def parse_document_from(data: bytes, previous: DocumentParse) -> DocumentParse | None:
    """The document's records past ``previous.resume_at``, given ``data`` = its bytes from there.

    The caller has checked that the bytes before ``resume_at`` are unchanged.
    ``records`` are only the new ones (to add after ``previous.records``);
    ``tail`` replaces ``previous.tail``. ``None`` when this cannot be done
    exactly (not whole yet, or an earlier eval or checkpoint changed): parse
    the whole document instead.
    """
    state = previous.state
    if not isinstance(state, _Resume) or previous.resume_at is None:
        return None
    rest = data.lstrip()
    if rest[:1] == b"," and state.entries:  # more entries after the last one read
        rest = rest[1:].lstrip()
        if rest[:1] != b"{":
            return None
    elif not (rest[:1] == b"]" or (rest[:1] == b"{" and not state.entries)):
        return None
    skipped = len(data) - len(rest)
    new_entries: list[Any] = []
    cut = 0
    if rest[:1] == b"{":
        found = entries_end(rest, state.after)
        if found is None:
            return None
        cut, new_entries = found
    tail = rest[cut:].lstrip()
    if tail == state.tail:  # the usual rewrite: new entries, the same tail
        doc, events = state.doc, state.events
        raw_evals, raw_checkpoints = state.raw_evals, state.raw_checkpoints
    else:
        tail_doc = _load(b'{"training_iterations":[' + tail)
        if tail_doc is None or list(tail_doc)[:2] != ["training_iterations", *([state.after] if state.after else [])]:
            return None
        del tail_doc["training_iterations"]
        doc = {**state.head, **tail_doc}
        raw_evals, raw_checkpoints = _list(doc.get("eval_steps")), _list(doc.get("checkpoints"))
        found_events = _grown_events(state, raw_evals, raw_checkpoints)
        if found_events is None:
            return None
        events = found_events
    iterations, first_mfu, max_iter = _iterations(new_entries)
    merged, consumed = _merge(iterations, events, state.consumed)
    first_mfu = state.first_mfu or first_mfu
    info = _run_info(doc, first_mfu)
    resume_at = previous.resume_at + skipped + cut if new_entries else previous.resume_at
    return DocumentParse(
        merged,
        [info, *_tail(doc, events, consumed)],
        resume_at=resume_at,
        head_end=previous.head_end,
        state=_Resume(
            head=state.head,
            after=state.after,
            entries=state.entries + len(new_entries),
            first_mfu=first_mfu,
            max_iter=max(state.max_iter, max_iter),
            consumed=consumed,
            events=events,
            raw_evals=raw_evals,
            raw_checkpoints=raw_checkpoints,
            tail=tail,
            doc=doc,
        ),
    )


def _load(data: bytes) -> dict[str, Any] | None:
    """The document as a dict, or ``None`` if it is not (yet) a whole one."""
    doc = load_object(data)
    if doc is None or not isinstance(doc.get("training_iterations", []), list):
        return None
    return doc


def _iterations(entries: Sequence[object]) -> tuple[list[Iteration], Mapping[str, Any], int]:
    """The valid entries as records, the first MFU dict and the largest iteration (-1: none).

    The hot loop of a cold load, kept flat.
    """
    out: list[Iteration] = []
    first_mfu: Mapping[str, Any] = {}
    largest = -1
    add = out.append
    isfinite = math.isfinite
    for entry in entries:
        if entry.__class__ is not dict:
            continue
        step = entry.get("iter")
        if step.__class__ is not int:
            step = as_int(step)
            if step is None:
                continue
        if step < 0:
            continue
        # Each number as _num reads it, with floats (nearly all) taken first.
        raw = entry.get("mfu")
        if raw.__class__ is dict:
            if not first_mfu and raw:
                first_mfu = raw
            mfu, tps = raw.get("mfu_percent"), raw.get("tokens_per_sec")
            mfu = mfu if mfu.__class__ is float and isfinite(mfu) else as_num(mfu)
            tps = tps if tps.__class__ is float and isfinite(tps) else as_num(tps)
        else:
            mfu, tps = as_num(raw), None
        if mfu == _MFU_SENTINEL:
            mfu = None
        time_ms = entry.get("time_ms")
        if not (time_ms.__class__ is float and isfinite(time_ms)):
            time_ms = as_num(time_ms)
        if time_ms is not None and time_ms < 0:
            time_ms = None
        loss = entry.get("loss")
        if loss.__class__ is not float:
            loss = as_num(loss, True)
        lr = entry.get("lr")
        lr = lr if lr.__class__ is float and isfinite(lr) else as_num(lr)
        add(Iteration(iter=step, loss=loss, time_ms=time_ms, mfu_pct=mfu, tokens_per_sec=tps, lr=lr))
        if step > largest:
            largest = step
    return out, first_mfu, largest


def _events(raw_evals: list[Any], raw_checkpoints: list[Any]) -> list[tuple[int, int, Record]]:
    """Evals and checkpoints in the order they are merged among the iterations.

    An eval (and the checkpoint after it) runs at the top of its iteration,
    before that iteration's step is logged: each goes before the first
    logged iteration at or past it.
    """
    events: list[tuple[int, int, Record]] = [(e.iter, 0, e) for e in (_eval(x) for x in raw_evals) if e]
    events += [(c.iter if c.iter is not None else -1, 1, c) for c in (_checkpoint(x) for x in raw_checkpoints) if c]
    events.sort(key=lambda item: (item[0], item[1]))
    return events


def _grown_events(
    state: _Resume, raw_evals: list[Any], raw_checkpoints: list[Any]
) -> list[tuple[int, int, Record]] | None:
    """The events of a rewrite that only appended evals and checkpoints past the iterations seen.

    ``None`` if earlier ones changed or a new one falls among the iterations
    already merged: only a full parse places those exactly.
    """
    old_e, old_c = len(state.raw_evals), len(state.raw_checkpoints)
    if raw_evals[:old_e] != state.raw_evals or raw_checkpoints[:old_c] != state.raw_checkpoints:
        return None
    if len(raw_evals) == old_e and len(raw_checkpoints) == old_c:
        return state.events
    added = _events(raw_evals[old_e:], raw_checkpoints[old_c:])
    if added and added[0][0] <= state.max_iter:
        return None
    events = state.events + added
    events.sort(key=lambda item: (item[0], item[1]))
    return events


def _merge(
    iterations: list[Iteration], events: list[tuple[int, int, Record]], consumed: int
) -> tuple[list[Record], int]:
    """Iterations with the events from ``consumed`` on merged in; how many events are now merged."""
    out: list[Record] = []
    k, n = consumed, len(events)
    for it in iterations:
        while k < n and events[k][0] <= it.iter:
            out.append(events[k][2])
            k += 1
        out.append(it)
    return out, k


def _tail(doc: Mapping[str, Any], events: list[tuple[int, int, Record]], consumed: int) -> list[Record]:
    """What follows the last iteration: later events, then the end of the run."""
    out: list[Record] = [record for _, _, record in events[consumed:]]
    end = _time(doc.get("end_time"))
    if end is not None:
        out.append(RunInfo(end_time=end))
        out.append(Outcome("finished", "end_time recorded", end))
    return out


def _run_info(doc: Mapping[str, Any], mfu: Mapping[str, Any]) -> RunInfo:
    """The run's metadata; ``mfu`` is the MFU dict of the first logged step (it states the peak)."""
    config = _mapping(doc.get("config"))
    startup = _mapping(doc.get("startup_info"))
    hardware = _mapping(startup.get("hardware"))
    model = _mapping(startup.get("model"))
    metadata = _mapping(doc.get("metadata"))
    params = as_int(model.get("total_params"))
    if params is None and as_num(mfu.get("model_params_billion")) is not None:
        params = round(as_num(mfu.get("model_params_billion")) * 1e9)  # type: ignore[operator]
    # Configs from before ``eval_at_start`` existed ran stock nanoGPT's loop,
    # which evaluates at iteration 0 (their eval_steps show it).
    eval_at_start = config.get("eval_at_start", True if config else None)
    world = as_int(metadata.get("world_size")) or as_int(hardware.get("num_gpus"))
    return RunInfo(
        run_id=as_str(doc.get("run_name")),
        name=_display_name(config),
        architecture=as_str(mfu.get("architecture")),
        config=config or None,
        world_size=world,
        params=params,
        gpu=as_str(hardware.get("gpu_name")) or as_str(mfu.get("gpu_name")),
        dtype=as_str(hardware.get("precision")) or as_str(config.get("dtype")),
        start_time=_time(doc.get("start_time")),
        target=as_int(config.get("max_iters")),
        eval_interval=as_int(config.get("eval_interval")),
        eval_at_start=eval_at_start if isinstance(eval_at_start, bool) else None,
        log_interval=as_int(config.get("log_interval")),
        batch_size=as_int(config.get("batch_size")),
        # This training script divides gradient_accumulation_steps by the
        # world size per GPU: the config value is the global count.
        grad_accum=as_int(config.get("gradient_accumulation_steps")),
        grad_accum_per_gpu=as_int(config.get("gradient_accumulation_steps_per_gpu")),
        block_size=as_int(config.get("block_size")),
        n_layer=as_int(config.get("n_layer")),
        n_head=as_int(config.get("n_head")),
        n_embd=as_int(config.get("n_embd")),
        mfu_peak_tflops=as_num(mfu.get("hardware_peak_tflops")),
        tokens_per_sec_scope="gpu",
        eval_cost_steps=_eval_cost_steps(config, world),
    )


def _eval_cost_steps(config: Mapping[str, Any], world: int | None) -> float | None:
    """nanoGPT's ``estimate_loss``: ``eval_iters`` micro-batches forward, for
    each of two splits, on every GPU; a step runs ``gradient_accumulation_steps``
    / world size of them forward and backward (about 3 forwards each)."""
    eval_iters = as_int(config.get("eval_iters"))
    per_gpu = as_int(config.get("gradient_accumulation_steps_per_gpu"))
    accum = as_int(config.get("gradient_accumulation_steps"))
    if per_gpu is None and accum:
        per_gpu = max(1, accum // (world or 1))
    if not (eval_iters and per_gpu):
        return None
    return 2 * eval_iters / (3 * per_gpu)


def _display_name(config: Mapping[str, Any]) -> str | None:
    """A readable name: the output folder, else run name and dataset."""
    out_dir = as_str(config.get("out_dir"))
    if out_dir and out_dir.rstrip("/").split("/")[-1] not in ("out", "output", "outputs"):
        name = out_dir.rstrip("/").split("/")[-1]
        return name[4:] if name.startswith(("out-", "out_")) else name
    parts = [p for p in (as_str(config.get("wandb_run_name")), as_str(config.get("dataset"))) if p]
    return " · ".join(parts) or None


def _eval(entry: object) -> Eval | None:
    if not isinstance(entry, dict) or (step := as_int(entry.get("iter"))) is None:
        return None
    return Eval(
        iter=step,
        val_loss=as_num(entry.get("val_loss"), keep_nan=True),
        train_loss=as_num(entry.get("train_loss"), keep_nan=True),
        wall_time=_time(entry.get("timestamp")),
    )


def _checkpoint(entry: object) -> Checkpoint | None:
    if not isinstance(entry, dict):
        return None
    return Checkpoint(
        iter=as_int(entry.get("iter")), path=as_str(entry.get("path")), wall_time=_time(entry.get("timestamp"))
    )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


SPEC = ParserSpec(
    format=FORMAT,
    kind="document",
    sniff=sniff,
    parse_document=parse_document,
    parse_document_resumable=parse_document_resumable,
    parse_document_from=parse_document_from,
)
