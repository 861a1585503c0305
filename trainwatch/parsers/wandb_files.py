"""The metadata files of a W&B run folder, as run facts.

``wandb.init`` keeps each run in ``wandb/run-<YYYYMMDD_HHMMSS>-<run id>/``
(``offline-run-…`` offline). Its ``files/`` folder holds, as W&B writes them:

* ``output.log``: a copy of the console, read by whichever console parser
  matches it. Everything here only adds facts to that run.
* ``config.yaml``: ``wandb.config``. The Python client wrote
  ``wandb_version: 1``, then ``yaml.dump`` (two-space indents) of each key as
  ``{desc: …, value: …}`` (later ``{value: …}`` only); wandb-core (Go) writes
  four-space indents and no ``wandb_version``. A ``_wandb`` entry holds W&B's
  own: ``cli_version``, ``python_version``, telemetry ``t``, older clients'
  ``start_time`` (epoch seconds), newer ones' ``e`` (the run's metadata keyed
  by writer id, as in ``wandb-metadata.json``). The rest is the trainer's
  settings (``parsers.wandb_config`` reads them).
* ``wandb-summary.json``: the last value of every key logged, with
  ``_step`` (W&B's count of ``wandb.log`` rows: *not* the trainer's step, and
  never read as one), ``_runtime`` (seconds since ``init``), ``_timestamp``.
* ``wandb-metadata.json``: ``startedAt`` (UTC), ``program``, ``args``,
  ``host``, git, ``gpu`` (NVML's device 0) and ``gpu_count`` (NVML's device
  count: every GPU of the host, whatever ``CUDA_VISIBLE_DEVICES`` says).

The binary ``run-<id>.wandb`` (history rows, system stats, the exit code) is
not read: no maintained reader of it exists outside W&B's own client.

Pure functions of the files' texts; the caller reads them (``ingest``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any

from trainwatch.core.records import Outcome, Record, RunInfo
from trainwatch.parsers import tfevents_tags
from trainwatch.parsers.base import line_failed
from trainwatch.parsers.wandb_config import count, settings

CONFIG = "config.yaml"
SUMMARY = "wandb-summary.json"
METADATA = "wandb-metadata.json"
#: The files read beside a run's ``output.log``.
FILES = (CONFIG, SUMMARY, METADATA)
CONSOLE = "output.log"
#: W&B's run folder: ``run-%Y%m%d_%H%M%S-<run id>``, ``offline-run-`` when offline.
RUN_FOLDER = re.compile(r"(?:offline-)?run-\d{8}_\d{6}-([^/\\]+)")
#: W&B's own files in ``files/`` besides the metadata: never a training log.
_OWN_FILES = frozenset({SUMMARY, METADATA, "requirements.txt", "conda-environment.yaml", "diff.patch"})
#: Folders of a run folder holding W&B's own files: its debug logs, and in
#: ``files/`` the saved code and logged media (``*.table.json`` ...).
_OWN_FOLDERS = frozenset({"logs", "tmp"})
_OWN_FILES_FOLDERS = frozenset({"code", "media"})
#: Entries of a config read at most, and how deep: YAML aliases can make a
#: small file a huge tree when walked.
MAX_ENTRIES = 5000
MAX_DEPTH = 8


# ------------------------------------------------------------------ paths


def console_run_id(path: str) -> str | None:
    """The W&B run id when ``path`` is a run's ``files/output.log``, else ``None``."""
    parts = re.split(r"[/\\]", path)
    if len(parts) < 3 or parts[-1] != CONSOLE or parts[-2] != "files":
        return None
    match = RUN_FOLDER.fullmatch(parts[-3])
    return match.group(1) if match else None


def is_own_file(path: str) -> bool:
    """Is ``path`` a file W&B keeps for itself in a run folder (its metadata,
    debug logs, saved code), not a training log? Also ``wandb/debug*.log``,
    the links to the latest run's debug logs."""
    if "run-" not in path and "debug" not in path:  # (the common case, cheaply)
        return False
    parts = re.split(r"[/\\]", path)
    if len(parts) >= 2 and parts[-2] == "wandb" and parts[-1].startswith("debug") and parts[-1].endswith(".log"):
        return True
    for index in range(len(parts) - 2, -1, -1):
        if RUN_FOLDER.fullmatch(parts[index]):
            inside = parts[index + 1 :]
            if inside[0] in _OWN_FOLDERS and len(inside) > 1:
                return True
            if inside[0] == "files" and len(inside) > 1:
                return (len(inside) == 2 and inside[1] in _OWN_FILES) or (
                    len(inside) > 2 and inside[1] in _OWN_FILES_FOLDERS
                )
            return False
    return False


# ------------------------------------------------------------------ files


def parse(name: str, text: str) -> list[Record] | None:
    """The records one of ``FILES`` gives; ``None`` if it is not whole (being
    written): the caller keeps what its last whole text said."""
    read = _READERS.get(name)
    if read is None:
        return []
    try:
        return read(text)
    except Exception:  # a malformed file must not stop the log beside it
        line_failed("wandb", text[:200])
        return None


def parse_config(text: str) -> list[Record] | None:
    """The run settings in ``config.yaml`` (and the metadata a newer client copies there)."""
    if not text.endswith("\n"):
        return None  # both writers end it with a newline: a cut file is being written
    doc = _load_yaml(text)
    if doc is None:
        return None
    if not isinstance(doc, dict):
        return []
    own = _value(doc.get("_wandb"))
    own = own if isinstance(own, dict) else {}
    values: dict[str, object] = {}
    budget = [MAX_ENTRIES]
    for key, entry in doc.items():
        if key in ("_wandb", "wandb_version"):
            continue
        _flatten(str(key), _value(entry), values, budget, 0)
    info = settings(values)
    # Newer clients: the metadata again, under ``e`` keyed by writer id; older ones: the start time.
    copies = own.get("e")
    meta = next((m for m in copies.values() if isinstance(m, dict)), None) if isinstance(copies, dict) else None
    base = metadata_info(meta) if meta else RunInfo(start_time=_epoch(own.get("start_time")))
    return [_merged(base, info)]


def parse_summary(text: str) -> list[Record] | None:
    """The final loss and runtime in ``wandb-summary.json`` (never ``_step``)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None  # being rewritten
    if not isinstance(doc, dict):
        return []
    records: list[Record] = []
    hf_runtime = _number(doc.get("train/train_runtime"))
    own = doc.get("_wandb")
    own_runtime = own.get("runtime") if isinstance(own, dict) else None
    runtime = hf_runtime or _number(doc.get("_runtime")) or _number(own_runtime)
    records.append(RunInfo(final_loss=_final_loss(doc), runtime_s=runtime if runtime and runtime > 0 else None))
    if hf_runtime is not None:
        # HF's Trainer logs train_runtime when train() returns, and only then.
        records.append(Outcome("finished", "train() returned (train/train_runtime in the W&B summary)"))
    return records


def parse_metadata(text: str) -> list[Record] | None:
    """GPU name and count, and the start time, in ``wandb-metadata.json``."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return [metadata_info(doc)] if isinstance(doc, dict) else []


_READERS: dict[str, Callable[[str], list[Record] | None]] = {
    CONFIG: parse_config,
    SUMMARY: parse_summary,
    METADATA: parse_metadata,
}


def metadata_info(meta: Mapping[str, Any]) -> RunInfo:
    """RunInfo from W&B's run metadata (``wandb-metadata.json`` or the config's ``e`` copy)."""
    gpu = meta.get("gpu")
    if not isinstance(gpu, str) or not gpu.strip():
        # The list of devices: ``gpu_nvidia`` (wandb-core), ``gpu_devices`` (Python client).
        devices = meta.get("gpu_nvidia") or meta.get("gpu_devices")
        first = devices[0] if isinstance(devices, list) and devices else None
        gpu = first.get("name") if isinstance(first, dict) else None
    gpus = count(meta.get("gpu_count"))
    return RunInfo(
        gpu=gpu.strip() if isinstance(gpu, str) and gpu.strip() else None,
        # NVML's count is the host's GPUs: the world size of the usual job that
        # takes a whole node (or a container or Slurm allocation of its GPUs),
        # too many for one that takes some of a shared box, too few across
        # nodes. Only the weakest source: config and console both come first.
        world_size=gpus,
        start_time=_iso_utc(meta.get("startedAt")),
    )


def _flatten(key: str, value: object, out: dict[str, object], budget: list[int], depth: int) -> None:
    """``out[key] = value``, nested mappings as ``parent.child`` keys, within ``budget`` entries."""
    key = key.replace("/", ".")
    budget[0] -= 1
    if budget[0] < 0:
        return
    if isinstance(value, dict) and depth < MAX_DEPTH:
        for child, inner in value.items():
            _flatten(f"{key}.{child}", inner, out, budget, depth + 1)
    elif not isinstance(value, dict | list):  # lists (and too-deep mappings) are no setting read here
        out[key] = value


def _value(entry: object) -> object:
    """A config entry's value: W&B wraps each as ``{value: …}`` (``desc`` beside it in older files)."""
    return entry.get("value") if isinstance(entry, dict) and "value" in entry else entry


def _load_yaml(text: str) -> object | None:
    """``text`` as YAML through PyYAML's safe loader (plain data, no Python
    objects); ``None`` if it is no YAML (a cut write)."""
    import yaml  # only when a W&B folder is met: ~30 ms to import

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where built: 5x faster
    try:
        return yaml.load(text, Loader=loader)
    except (yaml.YAMLError, RecursionError, ValueError):
        return None


# ------------------------------------------------------------------ summary


def _final_loss(summary: Mapping[str, object]) -> float | None:
    """The train loss among the summary's keys: the trainers' own names first
    (``train/loss``, ``lm loss`` … as their event files name them), else the
    one loss-like key if there is exactly one."""
    known = [k for k in summary if tfevents_tags.KNOWN.get(k) == tfevents_tags.LOSS]
    if known:
        return _number(summary[min(known, key=tfevents_tags.RANK.__getitem__)])
    guesses = [
        k
        for k in summary
        if not k.startswith("_") and tfevents_tags.classify(k) is None and tfevents_tags.is_loss_like(k)
    ]
    return _number(summary[guesses[0]]) if len(guesses) == 1 else None


# ------------------------------------------------------------------ values


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _iso_utc(text: object) -> datetime | None:
    """W&B's ``startedAt`` (UTC, with or without ``Z``) as a local time, as the logs' own times are."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone().replace(tzinfo=None)
    except (OverflowError, ValueError, OSError):
        return None


def _epoch(value: object) -> datetime | None:
    seconds = _number(value)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds)
    except (OverflowError, ValueError, OSError):
        return None


def _merged(*infos: RunInfo) -> RunInfo:
    """One RunInfo, later non-``None`` fields winning (as the aggregator merges them)."""
    out = RunInfo()
    for info in infos:
        changes = {f.name: v for f in fields(RunInfo) if (v := getattr(info, f.name)) is not None}
        out = replace(out, **changes)
    return out
