"""Where the entries of one growing array lie in a JSON document's bytes.

Loggers that rewrite a whole JSON document each time (the seed's run logs,
HF's ``trainer_state.json``) mostly append entries to one top-level array and
change the small tail after it. Knowing the byte offset just past the last
entry lets a reader parse only what a rewrite added. Offsets are found in the
bytes, without a second parse of the document, and each is checked by parsing
what lies on either side of it. No I/O here: callers hand in bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

from trainwatch.parsers.jsonvalues import loads

_BLANK = frozenset(b" \t\r\n")
_CLOSE_BRACE, _CLOSE_BRACKET, _COMMA = ord("}"), ord("]"), ord(",")
#: Candidates tried for the array's end: the key after it may also occur as a
#: string value further on.
_TRIES = 4


def load_object(data: bytes) -> dict[str, Any] | None:
    """``data`` as a JSON object, or ``None`` (not whole yet, or not an object).

    A document cut off mid-write rarely ends in ``}``: that is checked first,
    so a half-written 100 MB file costs nothing to turn down. A diverged run
    written by Python's ``json.dump`` holds bare ``NaN``/``Infinity`` tokens,
    which orjson refuses: ``jsonvalues.loads`` then reads it with the stdlib.
    """
    if _back(data, len(data), _CLOSE_BRACE) < 0:
        return None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        doc = loads(data) if b"NaN" in data or b"Infinity" in data else None
    return doc if isinstance(doc, dict) else None


def array_bounds(data: bytes, keys: list[str], key: str, entries: list[Any]) -> tuple[int, int] | None:
    """Byte offsets of the entries of the array ``key``: (just past its ``[``, just past the last ``}``).

    ``keys`` are the document's top-level keys in order and ``entries`` the
    array, both as parsed from ``data``. ``None`` if the document is not laid
    out so (no such array, entries that are not objects, or a check failed).
    """
    if key not in keys or (entries and not isinstance(entries[-1], dict)):
        return None
    index = keys.index(key)
    name = orjson.dumps(key)
    at = data.find(name)
    bracket = data.find(b"[", at) if at >= 0 else -1
    if bracket < 0 or data[at + len(name) : bracket].strip() != b":":
        return None
    head_end = bracket + 1
    try:
        head = orjson.loads(data[:head_end] + b"]}")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(head, dict) or list(head) != keys[: index + 1]:
        return None
    if not entries:
        return head_end, head_end
    after = keys[index + 1] if index + 1 < len(keys) else None
    # The entries were parsed with the whole document: parsing them again
    # would double a cold load, so only what follows them is checked.
    stop = len(data)
    for _ in range(_TRIES):
        stop = data.rfind(_needle(after), 0, stop)
        if stop < head_end:
            return None
        end = _array_end(data, stop, after is not None)
        if end <= head_end:
            continue
        tail = load_object(b'{"' + key.encode() + b'":[' + data[end:])
        if tail is not None and list(tail) == keys[index:] and not tail[key]:
            return head_end, end
    return None


def entries_end(data: bytes, after: str | None) -> tuple[int, list[Any]] | None:
    """Where the array entries at the start of ``data`` end (just past the last ``}``), and the entries.

    ``data`` starts with an entry and runs on past the array's ``]`` to the
    document's end; ``after`` is the key that follows the array (``None``:
    it is the last one). A candidate end counts only if everything before it
    parses as entries: then it is where the array closes.
    """
    stop = len(data)
    for _ in range(_TRIES):
        stop = data.rfind(_needle(after), 0, stop)
        if stop < 0:
            return None
        end = _array_end(data, stop, after is not None)
        if end <= 0:
            continue
        try:
            entries = orjson.loads(b"[" + data[:end] + b"]")
        except orjson.JSONDecodeError:
            continue
        if isinstance(entries, list):
            return end, entries
    return None


def _needle(after: str | None) -> bytes:
    return orjson.dumps(after) if after is not None else b"}"


def _back(data: bytes, end: int, char: int) -> int:
    """Index of ``char`` if it is the last non-blank byte before ``end``, else -1 (``data`` is not copied)."""
    i = end - 1
    while i >= 0 and data[i] in _BLANK:
        i -= 1
    return i if i >= 0 and data[i] == char else -1


def _array_end(data: bytes, stop: int, comma: bool) -> int:
    """Just past the ``}`` of ``}]`` (``}],`` if ``comma``) that ends right before ``stop``; else -1."""
    i = _back(data, stop, _COMMA) if comma else stop
    i = _back(data, i, _CLOSE_BRACKET) if i >= 0 else -1
    i = _back(data, i, _CLOSE_BRACE) if i >= 0 else -1
    return i + 1 if i >= 0 else -1
