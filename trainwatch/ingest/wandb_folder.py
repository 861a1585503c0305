"""What a W&B run folder's metadata adds to the run of its console log.

A run's ``files/output.log`` is read by whichever console parser matches it;
beside it, ``config.yaml``, ``wandb-summary.json`` and ``wandb-metadata.json``
(``parsers.wandb_files``) state the target, batch, sequence length, model
shape, GPU, start time and final values, whatever the console's format.

The log's own facts win: the folder only fills what the run does not know
yet (and corrects what it filled itself when a file changes). A console
prints what the code did (nanochat's gradient accumulation after dividing by
the world size, the steps a resumed run has left); a config holds what was
asked for, and a summary what was logged last. The facts are taken in
before the log's records, so that the first read of a log already knows its
eval interval when it classifies its steps, and again whenever a file
changes: W&B writes ``config.yaml`` after the console has started, and
rewrites the summary as the run goes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from dataclasses import fields
from pathlib import Path

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Outcome, Record, RunInfo
from trainwatch.parsers import wandb_files

_FIELDS = tuple(f.name for f in fields(RunInfo))


class WandbFolder:
    """The metadata files beside one W&B console log, and what they gave its run."""

    def __init__(self, folder: Path, run_id: str) -> None:
        self.folder = folder
        self.run_id = run_id
        self._stamps: dict[str, Hashable] = {}
        self._texts: dict[str, str] = {}
        self._records: dict[str, list[Record]] = {}
        self._given: dict[str, object] = {}  # RunInfo fields set from here, with their values
        self._read = False

    @classmethod
    def of(cls, path: Path) -> WandbFolder | None:
        """The folder of ``path`` if it is a W&B run's ``files/output.log``."""
        run_id = wandb_files.console_run_id(path.as_posix())
        return cls(path.parent, run_id) if run_id is not None else None

    def apply(self, agg: RunAggregator, read: Callable[[str], str | None]) -> bool:
        """Read the files that changed (``read(name)``: the text of the file
        ``name`` beside the log, ``None`` if there is none or it cannot be
        read) and give ``agg`` what they add; ``True`` if the run changed."""
        if not self._changed(read) and self._read:
            return False
        self._read = True
        facts = RunInfo(run_id=self.run_id)
        outcome: Outcome | None = None
        for name in wandb_files.FILES:  # (config, then summary, then metadata: later fields win)
            for record in self._records.get(name, ()):
                if isinstance(record, RunInfo):
                    facts = _over(facts, record, keep_first=name == wandb_files.METADATA)
                elif isinstance(record, Outcome):
                    outcome = record
        changed = self._fill(agg, facts)
        if outcome is not None and agg.outcome is None:
            agg.add(outcome)
            changed = True
        return changed

    def _changed(self, read: Callable[[str], str | None]) -> bool:
        """Re-read the files whose stamp moved; ``True`` if one now says something new."""
        changed = False
        for name in wandb_files.FILES:
            stamp = _stamp(self.folder / name)
            if stamp is not None and stamp == self._stamps.get(name):
                continue  # a local file unchanged since its last read
            text = read(name)
            if text is None:
                continue  # gone or unreadable: what it said stands
            if stamp is not None:
                self._stamps[name] = stamp
            previous = self._texts.get(name)
            if text is previous or text == previous:
                continue
            self._texts[name] = text
            records = wandb_files.parse(name, text)
            if records is not None:  # (None: being written; the last whole text's records stand)
                self._records[name] = records
                changed = True
        return changed

    def _fill(self, agg: RunAggregator, facts: RunInfo) -> bool:
        """Give ``agg`` the facts it lacks, or holds only because this folder gave them."""
        updates: dict[str, object] = {}
        for name in _FIELDS:
            value = getattr(facts, name)
            if value is None:
                continue
            current = getattr(agg.info, name)
            if current is None or (name in self._given and self._given[name] == current != value):
                updates[name] = value
        if not updates:
            return False
        agg.add(RunInfo(**updates))  # type: ignore[arg-type]
        for name, value in updates.items():
            if getattr(agg.info, name) == value:  # (the aggregator refuses values out of range)
                self._given[name] = value
        return True


def _over(base: RunInfo, new: RunInfo, *, keep_first: bool) -> RunInfo:
    """``base`` with ``new``'s fields: all of them, or (``keep_first``) only those ``base`` lacks.

    The metadata file fills in after the config: its GPU count is a guess at
    the world size that a config stating one overrules.
    """
    changes = {
        name: value
        for name in _FIELDS
        if (value := getattr(new, name)) is not None and not (keep_first and getattr(base, name) is not None)
    }
    return RunInfo(**{name: getattr(base, name) for name in _FIELDS} | changes)


def _stamp(path: Path) -> Hashable | None:
    """Identity, size and time of a local file; ``None`` where there is none to stat
    (absent, or a remote host's, whose text comes with the log's frames)."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)
