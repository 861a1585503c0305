"""Generic JSON-lines metrics: one object per line with a step and a loss.

Many training scripts log ``{"step": 120, "loss": 3.21, "lr": 6e-4, ...}`` a
line at a time (hand-written loops, ``jsonlines`` callbacks, wandb-style
``train/loss`` keys). No format is fixed, so a role -> candidate-keys mapping
says where to look: ``DEFAULT_KEYS`` covers the common spellings, and
``make_spec`` builds a parser for the user's mapping (the config's ``[jsonl]``
table, the CLI's ``--jsonl-keys step=global_step,loss=train/loss``, see
``parse_keys``). A key may be a dotted path into nested objects
(``train.loss``) when no flat key matches.

A line with a step and a loss is an iteration; with a val loss, an eval (both
when it has both). Several lines for one step (train metrics, then eval, then
system stats; two writers; a resume that logs its first step again) give one
iteration with the last value of each field: the step is emitted again, merged
with what the earlier lines said, and the aggregator takes the same step again
as a replacement, not a restart. The rate's scope (per GPU or total) is
unknown here, so it is left unset; ``mfu`` is read as percent (nanoGPT logs
``mfu*100``): a fraction under the ``mfu_pct`` role would show 100 times too small.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from typing import Any

from trainwatch.core.records import Eval, Iteration, Record, RunInfo
from trainwatch.parsers.base import ParserSpec
from trainwatch.parsers.jsonvalues import as_int, as_num, as_time, loads

FORMAT = "jsonl_metrics"

#: Role -> keys to try, first match wins.
DEFAULT_KEYS: dict[str, tuple[str, ...]] = {
    "iter": ("step", "iter", "iteration", "global_step", "train/step", "_step"),
    "loss": ("loss", "train_loss", "train/loss", "lm_loss", "train/lm_loss", "train_loss_step"),
    "time_ms": ("time_ms", "dt_ms", "step_time_ms", "iter_time_ms", "elapsed_ms", "train/step_time_ms"),
    "time_s": ("step_time", "iter_time", "dt", "time_s", "step_time_s", "perf/step_time", "train/step_time"),
    "tokens_per_sec": (
        "tokens_per_sec",
        "tokens_per_second",
        "tok_per_sec",
        "tok/s",
        "tps",
        "perf/tokens_per_sec",
        "train/tokens_per_sec",
    ),
    "mfu_pct": ("mfu", "mfu_pct", "mfu_percent", "perf/mfu", "train/mfu"),
    "lr": ("lr", "learning_rate", "train/lr", "train/learning_rate"),
    "grad_norm": ("grad_norm", "norm", "gradient_norm", "train/grad_norm"),
    "tokens_seen": ("tokens_seen", "num_tokens", "total_tokens", "consumed_tokens", "train/tokens"),
    "val_loss": ("val_loss", "eval_loss", "val/loss", "eval/loss", "validation_loss", "valid_loss"),
    "wall_time": ("timestamp", "time", "datetime", "wall_time", "_timestamp"),
    "target": ("max_steps", "total_steps", "max_iters", "num_steps", "total_iters"),
}

_FIELDS = tuple(f.name for f in fields(Iteration) if f.name != "iter")
#: How many lines of the head ``sniff`` looks at.
_SNIFF_LINES = 20


#: Other names a user may give a role (``step = "gs"`` means ``iter = "gs"``).
ROLE_ALIASES = {
    "step": "iter",
    "iteration": "iter",
    "learning_rate": "lr",
    "eval_loss": "val_loss",
    "mfu": "mfu_pct",
    "tps": "tokens_per_sec",
    "timestamp": "wall_time",
    "max_steps": "target",
}


class KeyMappingError(ValueError):
    """A user's key mapping that cannot be used; its message is one line for the CLI or the config file."""


def parse_keys(text: str) -> dict[str, tuple[str, ...]]:
    """``"iter=global_step,loss=train/loss|loss"`` as a mapping for ``make_spec``.

    ``|`` separates alternatives for one role. Raises ``KeyMappingError`` for
    an unknown role or a malformed item (this is user input, not log input).
    """
    mapping: dict[str, tuple[str, ...]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        role, sep, keys = item.partition("=")
        if not sep or not keys.strip():
            raise KeyMappingError(f"expected role=key, got {item!r}")
        mapping[role.strip()] = tuple(k.strip() for k in keys.split("|") if k.strip())
    return resolve_keys(mapping, defaults=False)


def resolve_keys(mapping: Mapping[str, object] | None = None, *, defaults: bool = True) -> dict[str, tuple[str, ...]]:
    """``DEFAULT_KEYS`` with the roles in ``mapping`` replaced (``defaults=False``:
    only the roles in ``mapping``, checked and normalised).

    ``mapping`` is what a user wrote, from the command line or a config file:
    role (or an alias, ``ROLE_ALIASES``) -> a key or a list of keys, best
    first. Raises ``KeyMappingError`` for anything else.
    """
    keys = dict(DEFAULT_KEYS) if defaults else {}
    if mapping is None:
        return keys
    if not isinstance(mapping, Mapping):
        raise KeyMappingError(f'expected role = key pairs (such as loss = "train/loss"), got {mapping!r}')
    for name, value in mapping.items():
        role = ROLE_ALIASES.get(name, name) if isinstance(name, str) else name
        if role not in DEFAULT_KEYS:
            known = ", ".join([*DEFAULT_KEYS, *ROLE_ALIASES])
            raise KeyMappingError(f"unknown role {name!r}; known roles: {known}")
        found = (value,) if isinstance(value, str) else value
        if not isinstance(found, list | tuple) or not found:
            raise KeyMappingError(f"{name}: expected a JSON key or a list of keys, got {value!r}")
        if not all(isinstance(key, str) and key.strip() for key in found):
            raise KeyMappingError(f"{name}: every key must be a non-empty string, got {value!r}")
        keys[role] = tuple(key.strip() for key in found)
    return keys


def _lookup(obj: Mapping[str, Any], candidates: tuple[str, ...]) -> object:
    for key in candidates:
        if key in obj:
            value = obj[key]
            if value is not None:
                return value
    for key in candidates:
        if "." in key:
            node: object = obj
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None:
                return node
    return None


#: The (role, key) pairs an object of one key set can fill, best key first
#: per role; a key is flat, or a dotted key's parts.
_Plan = tuple[tuple[str, str | tuple[str, ...]], ...]
#: Distinct key sets remembered per file (a log has a handful).
_MAX_PLANS = 64


def _plan(obj: Mapping[str, Any], keys: Mapping[str, tuple[str, ...]]) -> _Plan:
    present = obj.keys()
    plan: list[tuple[str, str | tuple[str, ...]]] = []
    for role, candidates in keys.items():
        for key in candidates:
            if key in present:
                plan.append((role, key))
            elif "." in key and key.split(".", 1)[0] in present:
                plan.append((role, tuple(key.split("."))))
    return tuple(plan)


def _values(obj: Mapping[str, Any], plan: _Plan) -> dict[str, object]:
    """Role -> the first non-null value among its keys."""
    values: dict[str, object] = {}
    for role, key in plan:
        if role in values:
            continue
        if type(key) is str:
            value = obj[key]
        else:
            value = obj
            for part in key:
                value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            values[role] = value
    return values


class JsonlMetricsParser:
    """Stateful parser of one JSONL metrics file."""

    def __init__(self, keys: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.keys = dict(keys) if keys is not None else dict(DEFAULT_KEYS)
        self._last: Iteration | None = None
        self._target: int | None = None
        # Resolving roles is the costly part of a line, and a log writes the
        # same few key sets over and over: resolve once per key set.
        self._plans: dict[tuple[str, ...], _Plan] = {}

    def feed(self, line: str) -> list[Record]:
        """Records of one line; ``[]`` unless it is an object with a step."""
        if not line.startswith("{"):
            line = line.strip().lstrip("\ufeff")
            if not line.startswith("{"):
                return []
        obj = loads(line)
        if type(obj) is not dict:
            return []
        signature = tuple(obj)
        plan = self._plans.get(signature)
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            plan = self._plans[signature] = _plan(obj, self.keys)
        values = _values(obj, plan)
        get = values.get
        step = as_int(get("iter"))
        if step is None or step < 0:
            return []
        records: list[Record] = []
        if "target" in values:
            target = as_int(values["target"])
            if target is not None and target > 0 and target != self._target:
                self._target = target
                records.append(RunInfo(target=target))
        wall = as_time(values["wall_time"]) if "wall_time" in values else None
        val = as_num(get("val_loss"), keep_nan=True)
        if val is not None:
            # Before the iteration: a step that evaluated spent that time too.
            records.append(Eval(iter=step, val_loss=val, wall_time=wall))
        loss = as_num(get("loss"), keep_nan=True)
        if loss is None:
            return records
        time_ms = as_num(get("time_ms"))
        if time_ms is None and (seconds := as_num(get("time_s"))) is not None:
            time_ms = seconds * 1000.0
        tps = as_num(get("tokens_per_sec"))
        tokens = as_int(get("tokens_seen"))
        it = Iteration(
            iter=step,
            loss=loss,
            time_ms=time_ms if time_ms is not None and time_ms >= 0 else None,
            mfu_pct=as_num(get("mfu_pct")),
            tokens_per_sec=tps if tps is not None and tps >= 0 else None,
            lr=as_num(get("lr")),
            grad_norm=as_num(get("grad_norm"), keep_nan=True),
            tokens_seen=tokens if tokens is not None and tokens >= 0 else None,
            wall_time=wall,
        )
        last = self._last
        if last is not None and last.iter == step:
            # The same step again: what this line leaves unsaid, the earlier one said.
            it = replace(last, **{f: v for f in _FIELDS if (v := getattr(it, f)) is not None})
        self._last = it
        records.append(it)
        return records


def make_sniff(keys: Mapping[str, tuple[str, ...]]) -> Callable[[str, str], bool]:
    """A ``sniff`` for ``keys``: JSONL whose objects have a step and a (val) loss."""

    def sniff(head: str, filename: str) -> bool:
        lines = [ln.strip() for ln in head.lstrip("\ufeff").split("\n")[:-1]]  # the last may be cut
        lines = [ln for ln in lines if ln][:_SNIFF_LINES]
        if not lines or not all(ln.startswith("{") for ln in lines):
            return False
        for ln in lines:
            obj = loads(ln)
            if not isinstance(obj, dict):
                return False
            if as_int(_lookup(obj, keys["iter"])) is not None and (
                _lookup(obj, keys["loss"]) is not None or _lookup(obj, keys["val_loss"]) is not None
            ):
                return True
        return False

    return sniff


def make_spec(mapping: Mapping[str, object] | None = None) -> ParserSpec:
    """A ``ParserSpec`` for JSONL with the roles in ``mapping`` remapped: the
    format of a user who says which keys mean what.

    ``make_spec({"iter": "global_step", "loss": ("train/loss", "loss")})``.
    Raises ``KeyMappingError`` (a ``ValueError``) for a mapping that cannot be
    used, with a one-line message (``resolve_keys``).
    """
    keys = resolve_keys(mapping)
    return ParserSpec(
        format=FORMAT,
        kind="lines",
        sniff=make_sniff(keys),
        new_line_parser=lambda: JsonlMetricsParser(keys),
    )


SPEC = make_spec()
