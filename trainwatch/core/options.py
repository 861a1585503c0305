"""What the user overrides for every run (``--target``, ``--tokens-per-iter``, ``--params``, ``--gpu``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunOptions:
    """User overrides applied to every run (CLI flags)."""

    target: int | None = None
    tokens_per_iter: int | None = None
    params: int | None = None
    gpu: str | None = None
