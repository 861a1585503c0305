"""Bytes in, typed records out: one module per log format, and the registry
that picks one for a file.

Parsers do no I/O and import only ``core.records`` (the typed records they
emit) besides each other.

Order matters: the first spec whose ``sniff`` accepts a file wins, so specific
formats come before generic ones (generic JSONL after them). The fallbacks
(generic text) come last and are only asked once every other format has had
its longer look at the file (``detect_head``).
"""

from __future__ import annotations

import json

from trainwatch.parsers import (
    buildnanogpt,
    composer_console,
    generic_text,
    hf_console,
    hf_trainer_state,
    jsonl_metrics,
    lightning_csv,
    litgpt,
    llamafactory,
    llm_tii_json,
    llmc,
    llmc_main,
    maxtext,
    megatron,
    modded_nanogpt,
    nanochat,
    nanogpt_stdout,
    olmo_console,
    swift_jsonl,
    tfevents,
    torchtitan,
    torchtune,
    wandb_files,
)
from trainwatch.parsers.base import LineParser, ParserSpec

#: Every known format, most specific first.
PARSERS: tuple[ParserSpec, ...] = (
    tfevents.SPEC,  # binary: recognised by its raw bytes, before any text sniffer
    llm_tii_json.SPEC,
    hf_trainer_state.SPEC,
    llamafactory.SPEC,
    swift_jsonl.SPEC,
    lightning_csv.SPEC,
    megatron.SPEC,
    llmc.SPEC,
    llmc_main.SPEC,
    olmo_console.SPEC,  # an indented name=value block under a [step=N/T] marker
    composer_console.SPEC,  # an indented "Train name: value" block under a [batch=N/T]: marker
    # Both print their own code or installs first: their sniffs look for
    # their metric lines or their own log signatures, never another's.
    modded_nanogpt.SPEC,
    nanochat.SPEC,
    nanogpt_stdout.SPEC,
    torchtitan.SPEC,
    maxtext.SPEC,
    litgpt.SPEC,
    torchtune.SPEC,
    buildnanogpt.SPEC,
    # Any console with an HF Trainer dict or an unnamed tqdm bar counting
    # iterations: after the formats with markers of their own.
    hf_console.SPEC,
    # Generic JSONL after the specific formats: it would accept most JSON-lines logs.
    jsonl_metrics.SPEC,
    # Fallbacks, last of all (see FALLBACKS).
    generic_text.SPEC,
)
#: Formats for logs nobody named (any text with a step counter and a loss):
#: the tail of ``PARSERS``, asked only after every other format has seen all
#: of a file's head, so that one never loses a file to them.
FALLBACKS: tuple[ParserSpec, ...] = (generic_text.SPEC,)
_SPECIFIC = PARSERS[: len(PARSERS) - len(FALLBACKS)]

#: What every sidecar name ends with (``ParserSpec.sidecar_suffix``), and the
#: W&B run metadata read beside any console log (``wandb_files``).
SIDECAR_SUFFIXES: tuple[str, ...] = tuple(
    sorted({s.sidecar_suffix for s in PARSERS if s.sidecar_suffix} | set(wandb_files.FILES))
)

#: How much of a file ``sniff`` sees; logs with a long preamble of their
#: own prints get a second look at ``SNIFF_BYTES_MORE``.
SNIFF_BYTES = 16384
SNIFF_BYTES_MORE = 262144


def detect(
    head: bytes, filename: str, *, lines_only: bool = False, replacing: ParserSpec | None = None
) -> ParserSpec | None:
    """The specific parser for a file whose first bytes are ``head``, or ``None``
    (the fallbacks are ``detect_fallback``'s). ``replacing`` stands in for the
    registered spec of its format (generic JSONL with the user's key mapping).

    A JSON-lines file is never taken for a document, whatever a later line
    holds (ms-swift's ``logging.jsonl`` ends with a line that embeds a whole
    HF ``log_history``): ``lines_only`` is for the second, longer look
    (``SNIFF_BYTES_MORE``) at a file whose first ``SNIFF_BYTES`` did not read
    as a document, and a head whose first line is a whole JSON object with
    more lines after it is JSONL.
    """
    binary = detect_binary(head, filename)
    if binary is not None:
        return binary
    text = head.decode("utf-8", "replace")
    lines_only = lines_only or _is_json_lines(text)
    for spec in _SPECIFIC:
        if replacing is not None and spec.format == replacing.format:
            spec = replacing
        if lines_only and spec.kind != "lines":
            continue
        if spec.sniff(text, filename):
            return spec
    return None


def detect_binary(head: bytes, filename: str) -> ParserSpec | None:
    """The binary format (TensorBoard event file) whose first bytes are ``head``, or ``None``."""
    return next((s for s in PARSERS if s.sniff_bytes is not None and s.sniff_bytes(head, filename)), None)


def _is_json_lines(text: str) -> bool:
    """Whether ``text`` starts with a one-line JSON object and goes on to another line."""
    first, newline, rest = text.lstrip("\ufeff \t\r\n").partition("\n")
    if not newline or not rest.strip() or not first.rstrip().endswith("}"):
        return False
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False


def detect_fallback(head: bytes, filename: str) -> ParserSpec | None:
    """The fallback parser (generic text) for a file no specific parser took, or ``None``."""
    text = head.decode("utf-8", "replace")
    return next((spec for spec in FALLBACKS if spec.sniff(text, filename)), None)


def detect_head(head: bytes, filename: str) -> ParserSpec | None:
    """The parser for a file given up to its first ``SNIFF_BYTES_MORE`` bytes,
    looked at as a tailer does: its first ``SNIFF_BYTES``, then, for a line
    format only, all of ``head``; the fallbacks last, on all of ``head``."""
    spec = detect(head[:SNIFF_BYTES], filename)
    if spec is None and len(head) > SNIFF_BYTES:
        spec = detect(head, filename, lines_only=True)
    return spec or detect_fallback(head, filename)


def by_format(name: str) -> ParserSpec | None:
    """The parser registered under a format name."""
    return next((spec for spec in PARSERS if spec.format == name), None)


__all__ = [
    "FALLBACKS",
    "PARSERS",
    "SIDECAR_SUFFIXES",
    "SNIFF_BYTES",
    "SNIFF_BYTES_MORE",
    "LineParser",
    "ParserSpec",
    "by_format",
    "detect",
    "detect_binary",
    "detect_fallback",
    "detect_head",
]
