"""Which files under the user's paths may be training logs.

One rule (``is_log_name``) for discovery, the watcher's event filter and the
remote side. Nothing is opened here: names and ``os.walk`` only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from trainwatch.parsers.tfevents import is_event_file_name
from trainwatch.parsers.wandb_files import is_own_file

#: Extensions that can hold a training log. Others (checkpoints, code, docs)
#: are never opened, which keeps discovery cheap in a busy run folder.
LOG_SUFFIXES = frozenset({".log", ".txt", ".out", ".err", ".json", ".jsonl", ".csv", ".stdout", ".stderr"})


def discover(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Candidate log files under ``paths`` (recursive), and path problems."""
    found: list[Path] = []
    problems: list[str] = []

    def unreadable(exc: OSError) -> None:  # a folder we may not list: say so, not "no runs found"
        problems.append(f"cannot read {exc.filename}: {exc.strerror or exc}")

    for root in paths:
        try:
            is_file = root.is_file()
            is_dir = not is_file and root.is_dir()
        except OSError as exc:  # a folder on the way we may not enter
            unreadable(exc)
            continue
        if is_file:
            found.append(root)
        elif is_dir:
            for folder, dirs, files in os.walk(root, onerror=unreadable):  # symlinked dirs not followed
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
                found.extend(Path(folder, name) for name in sorted(files) if is_log_path(os.path.join(folder, name)))
        elif root.exists():
            problems.append(f"{root} is not a file or directory")
        else:
            problems.append(f"no such file or directory: {root}")
    # The same file named twice (or through two roots) is one run.
    # realpath, not Path.resolve: that raises on a symlink loop (``loop -> loop``).
    unique = {os.path.realpath(path): path for path in reversed(found)}
    return list(reversed(unique.values())), problems


#: trainwatch's own exports (``export.export``): a .csv or .json beside the logs, no log.
_EXPORT = re.compile(r"trainwatch-\d{8}-\d{6}\.(?:md|csv|json|html)")


def is_log_name(name: str) -> bool:
    """Could a file of this name be a training log? One rule for discovery,
    the watcher's event filter and the remote side: not hidden, not one of
    trainwatch's own exports, and a log suffix, none, or a rotation number
    (``train.log.1``), or a TensorBoard event file
    (``events.out.tfevents.<time>.<host>``: the host is the suffix)."""
    if name.startswith(".") or (name.startswith("trainwatch-") and _EXPORT.fullmatch(name)):
        return False
    suffix = os.path.splitext(name)[1].lower()
    return suffix in LOG_SUFFIXES or suffix == "" or suffix.lstrip(".").isdigit() or is_event_file_name(name)


def is_log_path(path: str) -> bool:
    """``is_log_name`` of the file, and no file a tracker keeps for itself
    beside the logs (W&B's metadata, debug logs and saved code in a run
    folder: its console ``files/output.log`` is the log, read with them)."""
    return is_log_name(os.path.basename(path)) and not is_own_file(path)
