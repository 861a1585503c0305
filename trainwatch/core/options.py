"""What the user overrides for every run (``--target``, ``--tokens-per-iter``,
``--params``, ``--gpu``) and tells about logs (``--jsonl-keys``, ``[jsonl]``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunOptions:
    """User overrides applied to every run (CLI flags)."""

    target: int | None = None
    tokens_per_iter: int | None = None
    params: int | None = None
    gpu: str | None = None
    #: For JSON-lines logs of no known format: role -> the keys that hold it,
    #: best first (``parsers.jsonl_metrics``), checked already; ``()``: the defaults.
    jsonl_keys: tuple[tuple[str, tuple[str, ...]], ...] = ()
