"""Display names for runs: the user's choice first, then the log's, then the file's.

The user's names come from the config file (``trainwatch.config`` reads it);
this module only applies them, so the core stays free of I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Names:
    """Run names from the config, keyed by run id, file name or stem."""

    by_key: Mapping[str, str] = field(default_factory=dict)
    source: Path | None = None

    def lookup(self, run_id: str | None, path: Path) -> str | None:
        for key in (run_id, path.name, path.stem):
            if key and key in self.by_key:
                return self.by_key[key]
        return None


def display_name(names: Names, run_id: str | None, log_name: str | None, path: Path) -> str:
    """The name a person sees: config, else the log's own, else the file."""
    return names.lookup(run_id, path) or log_name or path.stem
