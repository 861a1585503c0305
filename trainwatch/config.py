"""The user's TOML config file: where it is, and the run names it gives.

The config maps a run to a name the way the seed's ``MODEL_INFO`` did::

    [runs.run_20251113_225009]
    name = "Qwen3 1.8B Optimal"

A key matches a run's id (as its log states it), its file name or its file
stem (or, for a run of several files, its folder's or job's name). A
``[jsonl]`` table says which keys of a JSON-lines log of no known format
hold what (``parsers.jsonl_metrics``; ``--jsonl-keys`` adds to it)::

    [jsonl]
    step = "trainer/global_step"
    loss = ["train/loss", "loss"]

Where trainwatch's rules put a job's files in the wrong runs, ``[[group]]``
joins files into one run and ``[[split]]`` makes each file a run of its own
(``ingest.grouping.GroupRules``)::

    [[group]]
    paths = ["/scratch/job-*/"]        # one run per matching folder
    [[split]]
    paths = ["sweeps/*/checkpoint-*/trainer_state.json"]

A top-level ``notify`` list gives where push alerts go (apprise URLs; the
``--notify`` flags add to it)::

    notify = ["ntfy://ntfy.sh/my-runs", "json://127.0.0.1:8000/hook"]

The config is ``--config FILE``, else ``$TRAINWATCH_CONFIG``, else
``./trainwatch.toml``, else ``config.toml`` in the user's config folder
(``$XDG_CONFIG_HOME/trainwatch``, by default ``~/.config/trainwatch``, as
platformdirs finds it on each system; ``~/.config/trainwatch`` is read too).

A config the user named (``--config``, ``$TRAINWATCH_CONFIG``) must be
there; and whatever the file, a key trainwatch does not know (``[run.x]``,
``nmae = ...``) or a name that is not text is an error that says where,
never silently no names at all.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from trainwatch.core.names import Names
from trainwatch.ingest.files import NotRegularFile, read_regular
from trainwatch.ingest.grouping import GroupRuleError, GroupRules
from trainwatch.parsers.jsonl_metrics import KeyMappingError, resolve_keys

#: A config is a few lines; a bigger file is not one (``--config /dev/zero`` never ends).
MAX_CONFIG = 1 << 20
#: The top-level keys a config may hold (any other is a typo, said as one):
#: a key read here from now on must be listed.
TABLES = ("runs", "jsonl", "group", "split", "notify")


class ConfigError(Exception):
    """The config file is unreadable or malformed (one-line message)."""


def config_path(explicit: Path | None) -> Path | None:
    """The config file in effect, or ``None`` where there is none."""
    if explicit is not None:
        return explicit
    named = os.environ.get("TRAINWATCH_CONFIG")
    if named:
        return Path(named)  # asked for: read (and a missing one said), not skipped
    candidates = [
        "trainwatch.toml",
        str(default_config_file()),
        os.path.expanduser("~/.config/trainwatch/config.toml"),  # where macOS users were told to put it
    ]
    return next((Path(c) for c in candidates if _is_file(c)), None)


def default_config_file() -> Path:
    """``config.toml`` in the user's config folder: ``$XDG_CONFIG_HOME/trainwatch``
    (``~/.config/trainwatch``) on Linux, the system's own place elsewhere."""
    from platformdirs import user_config_path

    return user_config_path("trainwatch", appauthor=False) / "config.toml"


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except OSError:  # a home we may not enter (HOME=/root under another user): no config there
        return False


def _read(path: Path) -> dict[str, object]:
    try:
        # Not open(): a FIFO would block it until a writer comes, /dev/zero never ends.
        data = tomllib.loads(read_regular(path, MAX_CONFIG).decode("utf-8"))
    except NotRegularFile:
        raise ConfigError(f"cannot read config {path}: not a regular file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise ConfigError(f"config {path}: unknown key {unknown[0]!r} (a config holds {', '.join(TABLES)})")
    return data


def load_jsonl_keys(explicit: Path | None = None) -> dict[str, tuple[str, ...]]:
    """The ``[jsonl]`` key mapping of the config in effect, checked (none: empty)."""
    path = config_path(explicit)
    if path is None:
        return {}
    table = _read(path).get("jsonl", {})
    if not isinstance(table, dict):
        raise ConfigError(f"config {path}: [jsonl] must be a table")
    try:
        return resolve_keys(table, defaults=False)
    except KeyMappingError as exc:
        raise ConfigError(f"config {path}: [jsonl] {exc}") from exc


def load_grouping(explicit: Path | None = None) -> GroupRules:
    """The ``[[group]]`` and ``[[split]]`` overrides of the config in effect (none: no overrides)."""
    path = config_path(explicit)
    if path is None:
        return GroupRules()
    data = _read(path)
    try:
        return GroupRules.from_config(data.get("group"), data.get("split"))
    except GroupRuleError as exc:
        raise ConfigError(f"config {path}: {exc}") from exc


def load_names(explicit: Path | None = None) -> Names:
    """Read run names from the config in effect (none: an empty mapping)."""
    path = config_path(explicit)
    if path is None:
        return Names()
    data = _read(path)
    runs = data.get("runs", {})
    if not isinstance(runs, dict):
        raise ConfigError(f"config {path}: [runs] must be a table")
    names = {}
    for key, value in runs.items():
        where = f"config {path}: [runs.{key}]"
        if not isinstance(value, dict):
            raise ConfigError(f'{where} must be a table with name = "..."')
        extra = sorted(set(value) - {"name"})
        if extra:
            raise ConfigError(f"{where}: unknown key {extra[0]!r} (only name is read)")
        if "name" not in value:
            raise ConfigError(f'{where} has no name = "..."')
        if not isinstance(value["name"], str):
            raise ConfigError(f"{where}: name must be text in quotes, not {str(value['name'])[:40]}")
        names[str(key)] = value["name"]
    return Names(names, path)


def load_notify(explicit: Path | None = None) -> list[str]:
    """The config's ``notify`` URLs (a list of strings, or one string); none: empty."""
    path = config_path(explicit)
    if path is None:
        return []
    value = _read(path).get("notify", [])
    urls = [value] if isinstance(value, str) else value
    if not isinstance(urls, list) or not all(isinstance(u, str) and u.strip() for u in urls):
        raise ConfigError(f'config {path}: notify must be a list of URLs, e.g. notify = ["ntfy://ntfy.sh/my-runs"]')
    return [u.strip() for u in urls]
