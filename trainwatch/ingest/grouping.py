"""Which files are one training job: the stage between discovery and parsing.

One job writes several files, and a user counts rows as jobs. A file's
group is told from where it sits and what it says, never from a list of
file names:

* everything below a W&B run folder (``wandb/run-<date>_<time>-<id>/``,
  ``offline-run-…``) is that run;
* an HF ``Trainer`` output folder is one run: its ``checkpoint-<N>/`` folders
  (``trainer_state.json``; the newest step wins when figures are merged),
  ``runs/<Mon DD_hh-mm-ss>_<host>/`` event files (``TrainingArguments``'
  default ``logging_dir``), a ``trainer_state.json`` at its top, and any log
  directly inside it;
* event files that share another folder are that TensorBoard run's, and so
  are the logs beside them;
* a console log beside an output folder joins it once it names that folder
  (a checkpoint it saved there, its ``output_dir``): ``Groups.claim``;
* a job's stdout and stderr (``NAME.out`` / ``NAME.err``, Slurm's
  ``slurm-%j`` and ``%x-%j`` among them) are one run;
* a log's rotated copies (``train.log.1``, …) present at startup are read
  into the log's own source, oldest first (``rotation_chains``); later copies
  are the watcher's to tell (``ingest.rotation``). Over ssh, where bytes come
  file by file, a copy joins its log's group instead.

The config's ``[[group]]`` and ``[[split]]`` patterns (``GroupRules``) come
before all of these. A group's *primary* file is its row's ``path`` and
identity (the Prometheus labels): chosen when the row is first shown (a
console log before a state document, before event files, before checkpoint
states; stdout before stderr) and kept while files join, so a joining file
never renames a row. The shared ``Groups`` serves the watcher, ``snapshot``
and remote hosts alike. Pure: paths in, keys out; no file is opened here.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from trainwatch.core.state import RunState
from trainwatch.core.stats import RunStats
from trainwatch.ingest import remote

#: ``TrainingArguments``' ``logging_dir`` default: ``runs/`` + ``%b%d_%H-%M-%S`` + ``_`` + host name.
_HF_LOGGING_DIR = re.compile(r"[^\W\d_]+\d{2}_\d{2}-\d{2}-\d{2}_.+")
_CHECKPOINT = re.compile(r"checkpoint-\d+")
#: W&B's run folder: ``run-%Y%m%d_%H%M%S-<run id>`` (``offline-run-`` when offline).
_WANDB_RUN = re.compile(r"(?:offline-)?run-\d{8}_\d{6}-.+")
#: What every TensorBoard event file's name holds (``events.out.tfevents.<time>.<host>...``).
EVENTS_MARK = ".tfevents."
#: A job's stdout and stderr suffixes, by pairs.
_STREAMS = {".out": ".out|.err", ".err": ".out|.err", ".stdout": ".stdout|.stderr", ".stderr": ".stdout|.stderr"}


class GroupRuleError(ValueError):
    """A ``[[group]]`` or ``[[split]]`` entry of the config is malformed (one line)."""


@dataclass(frozen=True, slots=True)
class GroupRules:
    """The config's overrides, for when the rules guess wrong.

    ``join``: each entry's patterns make one run of the files they match; a
    pattern ending in ``/`` makes one run per folder it matches (everything
    below it). ``split``: a file a pattern matches is a run of its own. A
    pattern starting with ``/`` or ``~`` matches the whole path, another one
    its end (``*/`` in front); ``*`` matches ``/`` too, as in ``fnmatch``.
    """

    join: tuple[tuple[str, ...], ...] = ()
    split: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, groups: object, splits: object) -> GroupRules:
        """Rules from the TOML values of ``[[group]]`` and ``[[split]]`` (``None``: absent).

        Raises ``GroupRuleError`` with a one-line reason."""
        join = tuple(_patterns(entry, "group", index) for index, entry in enumerate(_entries(groups, "group")))
        entries = enumerate(_entries(splits, "split"))
        split = tuple(pattern for index, entry in entries for pattern in _patterns(entry, "split", index))
        return cls(join, split)

    def key(self, path: str) -> str | None:
        """The group the config puts ``path`` in (its own path for a split), else ``None``."""
        bare = _bare(path)
        if any(_matches(bare, pattern) for pattern in self.split):
            return path
        for index, patterns in enumerate(self.join, 1):
            for pattern in patterns:
                if not pattern.endswith("/"):
                    if _matches(bare, pattern):
                        return f"[[group]] {index}"
                    continue
                # The shallowest folder that matches: ``*`` also matches the folders below it.
                parts = bare.split(os.sep)
                for depth in range(1, len(parts)):
                    folder = os.sep.join(parts[:depth]) + os.sep
                    if folder != os.sep and _matches(folder, pattern):
                        return f"[[group]] {index} {path[: len(path) - len(bare)]}{folder}"
        return None


@dataclass(eq=False)
class Group:
    """The files of one run. ``primary`` is its row's path once the row was shown."""

    key: str
    #: A folder or job name to call the run by, where the group is more than a file.
    label: str | None
    members: list[str] = field(default_factory=list)
    primary: str | None = None
    #: When the primary was chosen (a counter): of two shown runs that turn out
    #: to be one, the one shown first keeps its identity.
    pinned: int | None = None
    #: The last merge: its files and their stats (the very objects), and the
    #: run's stats. Unchanged files give the same object, which the app tells
    #: apart from news by identity, for free (``ingest.publish``).
    merged: tuple[tuple[str, ...], tuple[RunStats, ...], RunStats] | None = None


class Groups:
    """Every file's group, kept as files come and go (one per watcher, or per snapshot)."""

    def __init__(self, rules: GroupRules | None = None) -> None:
        self.rules = rules or GroupRules()
        self._folders: dict[str, str] = {}  # run folder -> the group key of the files directly in it
        self._of: dict[str, Group] = {}
        self._groups: dict[str, Group] = {}
        self._claims: dict[str, str] = {}  # group key -> the output folder its log named
        self._copies: dict[str, list[str]] = defaultdict(list)  # remote log -> its rotated copies' paths
        self._pins = itertools.count(1)
        #: Files read into another file's source (a log's rotated copies at
        #: startup, oldest first): listed among its run's sources.
        self.read_with: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ files

    def add(self, path: str) -> Group:
        """Place a file (once). A file that shows its folder is a run folder
        brings the files already directly in it into that run; over ssh, a
        log brings in its rotated copies that came first."""
        group = self._of.get(path)
        if group is not None:
            return group
        revealed = self._learn(path)
        self._place(path, self.key(path))
        for folder in revealed:
            for other in [p for p in self._of if os.path.dirname(p) == folder and p != path]:
                self._move(other, self.key(other))
        if remote.host_of(path) is not None:
            base, number = os.path.splitext(path)
            if _is_number(number) and EVENTS_MARK not in os.path.basename(path):
                self._copies[base].append(path)
            for copy in self._copies.get(path, ()):
                self._move(copy, self.key(copy))
        return self._of[path]

    def remove(self, path: str) -> None:
        """Forget a file that holds no run (deleted before it was ever read)."""
        group = self._of.pop(path, None)
        if group is None:
            return
        group.members.remove(path)
        if group.primary == path:
            group.primary = group.pinned = None
        if not group.members:
            del self._groups[group.key]

    def claim(self, path: str, folders: Iterable[str]) -> bool:
        """``path`` says it writes into ``folders`` (relative ones to its own
        folder): a console log beside an output folder that names it joins
        that folder's run, and brings its group along (a job's ``.err``, now
        or when it comes). ``True`` if anything moved."""
        group = self._of.get(path)
        if group is None or group.key in self._claims or self.rules.key(path) is not None:
            return False
        here = os.path.dirname(path)
        for named in folders:
            folder = os.path.normpath(os.path.join(here, named))
            key = self._folders.get(folder)
            if key is None or os.path.dirname(folder) != here or key == group.key:
                continue  # not a run folder, or not beside the log (one in it is its run already)
            self._claims[group.key] = key
            for member in list(group.members):
                self._move(member, self.key(member))
            return True
        return False

    def key(self, path: str) -> str:
        """The group the rules give ``path`` now."""
        override = self.rules.key(path)
        if override is not None:
            return override
        key = _auto(path, self._folders, self._of)
        return self._claims.get(key, key)

    # ----------------------------------------------------------------- groups

    def group_of(self, path: str) -> Group | None:
        return self._of.get(path)

    def groups(self) -> list[Group]:
        """Every group with a file, oldest first."""
        return [g for g in self._groups.values() if g.members]

    def primary(self, group: Group, kinds: Mapping[str, str | None]) -> str:
        """The row's path: the one shown before, else the best of ``kinds``
        (the members that hold a run, with their parser kind), then kept."""
        if group.primary is None:
            group.primary = min(kinds, key=lambda p: _rank(p, kinds[p]))
            group.pinned = next(self._pins)
        return group.primary

    # -------------------------------------------------------------- internals

    def _learn(self, path: str) -> list[str]:
        """The run folders ``path`` shows that were not known yet."""
        folder, name = os.path.split(path)
        parent, folder_name = os.path.split(folder)
        found: dict[str, str] = {}
        if _CHECKPOINT.fullmatch(folder_name):
            found[parent] = parent
        elif name == "trainer_state.json":
            found[folder] = folder
        elif EVENTS_MARK in name:
            grand, runs = os.path.split(parent)
            owner = grand if runs == "runs" and _HF_LOGGING_DIR.fullmatch(folder_name) else folder
            found[folder] = owner
            if owner != folder:
                found[owner] = owner
        new = [f for f in found if f not in self._folders]
        for folder_path, key in found.items():
            self._folders.setdefault(folder_path, key)
        return new

    def _place(self, path: str, key: str) -> Group:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(key, _label(key, path))
        group.members.append(path)
        self._of[path] = group
        return group

    def _move(self, path: str, key: str) -> None:
        old = self._of[path]
        if old.key == key:
            return
        old.members.remove(path)
        new = self._place(path, key)
        if old.primary == path:
            # A shown run's row follows its file: its path stays the row's
            # identity (Prometheus' labels), unless the run it joins was shown first.
            if new.pinned is None or (old.pinned is not None and old.pinned < new.pinned):
                new.primary, new.pinned = old.primary, old.pinned
            old.primary = old.pinned = None
        if not old.members:
            del self._groups[old.key]


def _auto(path: str, folders: Mapping[str, str], known: Mapping[str, Group]) -> str:
    """The group key the layout gives ``path`` (``folders``: the run folders known)."""
    folder, name = os.path.split(path)
    parts = path.split(os.sep)
    for index in range(len(parts) - 2, 0, -1):
        if _WANDB_RUN.fullmatch(parts[index]) and parts[index - 1] == "wandb":
            return os.sep.join(parts[: index + 1])
    parent, folder_name = os.path.split(folder)
    if _CHECKPOINT.fullmatch(folder_name) and parent:
        return parent
    if folder in folders:  # an event file's folder, an output folder: the run of the files directly in it
        return folders[folder]
    stem, suffix = os.path.splitext(name)
    if suffix in _STREAMS and stem:
        return f"{os.path.join(folder, stem)}{_STREAMS[suffix]}"
    if remote.host_of(path) is not None:
        # Over ssh a rotated copy comes as a file of its own: it joins its log's run.
        base, number = os.path.splitext(path)
        if _is_number(number) and EVENTS_MARK not in name and base in known:
            return known[base].key
    return path


def _label(key: str, path: str) -> str | None:
    """The name of a group that is more than its file: its folder's, its job's."""
    if key == path:
        return None
    if key.endswith(tuple(_STREAMS.values())):
        return os.path.basename(key).rpartition(".")[0].rpartition(".")[0] or None
    if key.startswith("[[group]]"):  # "[[group]] 2" (those files), "[[group]] 2 /scratch/job-7/" (that folder)
        folder = key.split(" ", 2)[2:]
        return os.path.basename(folder[0].rstrip(os.sep)) or None if folder else None
    return os.path.basename(key.rstrip(os.sep)) or None


def _rank(path: str, kind: str | None) -> tuple[int, bool, int, str]:
    """Which file of a run is its row's: a console log, then a state document
    at the top, then event files, then checkpoint states (the newest, which
    ``save_total_limit`` deletes last); stdout before stderr."""
    folder, name = os.path.split(path)
    checkpoint = os.path.basename(folder)
    step = 0
    if _CHECKPOINT.fullmatch(checkpoint):
        role, step = 3, int(checkpoint.rpartition("-")[2])
    elif EVENTS_MARK in name:
        role = 2
    else:
        role = 1 if kind == "document" else 0
    return role, os.path.splitext(name)[1] in (".err", ".stderr"), -step, path


def rotation_chains(
    paths: Sequence[str], mtime: Callable[[str], float | None], rules: GroupRules | None = None
) -> dict[str, list[str]]:
    """For each log with rotated copies beside it (``train.log`` and
    ``train.log.1``, ``.2``, …): the copies, oldest first, to read before it.

    A copy is older than what it was rotated from: the chain follows the
    numbers while the modification times agree (``.2`` no newer than ``.1``,
    ``.1`` no newer than the log). A newer ``train.log.1`` is a run that
    found ``train.log`` taken, and stays a run of its own; so does a file a
    ``[[split]]`` pattern names.
    """
    present = set(paths)
    copies: dict[str, list[tuple[int, str]]] = defaultdict(list)
    split = rules.split if rules is not None else ()
    for path in paths:
        base, number = os.path.splitext(path)
        if (
            _is_number(number)
            and base in present
            and EVENTS_MARK not in os.path.basename(path)
            and not any(_matches(_bare(path), pattern) for pattern in split)
        ):
            copies[base].append((int(number[1:]), path))
    chains: dict[str, list[str]] = {}
    for base, numbered in copies.items():
        newer = mtime(base)
        chain: list[str] = []
        for _, path in sorted(numbered):
            stamp = mtime(path)
            if stamp is None or newer is None or stamp > newer:
                break
            chain.append(path)
            newer = stamp
        if chain:
            chains[base] = chain[::-1]
    return chains


def named_folders(agg: RunState) -> list[str]:
    """The output folders a log names: where its last checkpoint was saved
    (HF's ``outputs/checkpoint-500`` is in ``outputs``; nanoGPT saves to its
    ``out_dir`` itself), its ``output_dir``."""
    named: list[str] = []
    last = agg.checkpoints[-1] if agg.checkpoints else None  # (looked at after each read: no scan)
    if last is not None and last.path:
        saved = last.path.strip().rstrip("/\\")
        named += [saved, os.path.dirname(saved)]
    config = agg.info.config
    output_dir = config.get("output_dir") if config else None
    if isinstance(output_dir, str) and output_dir:
        named.append(output_dir)
    return named


# ------------------------------------------------------------ config patterns


def _entries(value: object, table: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise GroupRuleError(f"[[{table}]] must be an array of tables ([[{table}]] with paths = [...])")
    return value


def _patterns(entry: object, table: str, index: int) -> tuple[str, ...]:
    where = f"[[{table}]] #{index + 1}"
    if not isinstance(entry, dict):
        raise GroupRuleError(f"{where} must be a table with paths = [...]")
    unknown = sorted(set(entry) - {"paths"})
    if unknown:
        raise GroupRuleError(f"{where}: unknown key {unknown[0]!r} (only paths = [...])")
    paths = entry.get("paths")
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p.strip() for p in paths):
        raise GroupRuleError(f"{where}: paths must be a non-empty list of path patterns")
    return tuple(os.path.expanduser(p) for p in paths)


def _matches(path: str, pattern: str) -> bool:
    if pattern.startswith(os.sep):
        return fnmatchcase(path, pattern)
    return fnmatchcase(path, pattern) or fnmatchcase(path, "*" + os.sep + pattern)


def _is_number(suffix: str) -> bool:
    """Is this file suffix a rotation number (``.1``)?"""
    return suffix[1:].isascii() and suffix[1:].isdigit()


def _bare(path: str) -> str:
    """The path on its host: ``gpu1:/runs/x.log`` -> ``/runs/x.log``."""
    root = None if path.startswith(os.sep) else remote.parse_root(path)
    return root.path if root is not None else path
