"""Log-format parsers and the registry that picks one for a file.

Order matters: the first spec whose ``sniff`` accepts a file wins, so specific
formats come before generic ones (generic JSONL last).
"""

from __future__ import annotations

from trainwatch.parsers import llm_tii_json
from trainwatch.parsers.base import LineParser, ParserSpec

#: Every known format, most specific first.
PARSERS: tuple[ParserSpec, ...] = (llm_tii_json.SPEC,)

#: How much of a file ``sniff`` sees.
SNIFF_BYTES = 16384


def detect(head: bytes, filename: str) -> ParserSpec | None:
    """The parser for a file whose first bytes are ``head``, or ``None``."""
    text = head[:SNIFF_BYTES].decode("utf-8", "replace")
    for spec in PARSERS:
        if spec.sniff(text, filename):
            return spec
    return None


def by_format(name: str) -> ParserSpec | None:
    """The parser registered under a format name."""
    return next((spec for spec in PARSERS if spec.format == name), None)


__all__ = ["PARSERS", "SNIFF_BYTES", "LineParser", "ParserSpec", "by_format", "detect"]
