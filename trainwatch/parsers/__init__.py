"""Log-format parsers and the registry that picks one for a file.

Order matters: the first spec whose ``sniff`` accepts a file wins, so specific
formats come before generic ones (generic JSONL last).
"""

from __future__ import annotations

from trainwatch.parsers import (
    buildnanogpt,
    hf_trainer_state,
    jsonl_metrics,
    lightning_csv,
    llamafactory,
    llm_tii_json,
    llmc,
    megatron,
    nanogpt_stdout,
    torchtitan,
)
from trainwatch.parsers.base import LineParser, ParserSpec

#: Every known format, most specific first.
PARSERS: tuple[ParserSpec, ...] = (
    llm_tii_json.SPEC,
    hf_trainer_state.SPEC,
    llamafactory.SPEC,
    lightning_csv.SPEC,
    megatron.SPEC,
    llmc.SPEC,
    llmc.MAIN_LOG_SPEC,
    nanogpt_stdout.SPEC,
    torchtitan.SPEC,
    buildnanogpt.SPEC,
    # Generic JSONL last: it would accept most JSON-lines logs.
    jsonl_metrics.SPEC,
)

#: What every sidecar name ends with (``ParserSpec.sidecar_suffix``).
SIDECAR_SUFFIXES: tuple[str, ...] = tuple(sorted({s.sidecar_suffix for s in PARSERS if s.sidecar_suffix}))

#: How much of a file ``sniff`` sees; logs with a long preamble of their
#: own prints get a second look at ``SNIFF_BYTES_MORE``.
SNIFF_BYTES = 16384
SNIFF_BYTES_MORE = 262144


def detect(head: bytes, filename: str) -> ParserSpec | None:
    """The parser for a file whose first bytes are ``head``, or ``None``."""
    text = head.decode("utf-8", "replace")
    for spec in PARSERS:
        if spec.sniff(text, filename):
            return spec
    return None


def by_format(name: str) -> ParserSpec | None:
    """The parser registered under a format name."""
    return next((spec for spec in PARSERS if spec.format == name), None)


__all__ = [
    "PARSERS",
    "SIDECAR_SUFFIXES",
    "SNIFF_BYTES",
    "SNIFF_BYTES_MORE",
    "LineParser",
    "ParserSpec",
    "by_format",
    "detect",
]
