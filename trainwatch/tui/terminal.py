"""The app's terminal: which file it draws on, which characters it may use,
and the signals that end or pause it.

Textual draws on stderr. ``trainwatch runs 2>err.log`` then drew into the
file (46 KB/s) and left the screen blank: ``drawing_on_terminal`` puts the
terminal on stderr's file descriptor while the app runs, and gives stderr
back after.

Under a legacy locale (ISO-8859-1) or ``PYTHONIOENCODING=ascii`` the
terminal cannot show box drawing, braille or ``●``: Python wrote them as
``\\u256d`` text, wider than measured. ``ascii_driver`` wraps Textual's
driver so that every frame is written with ASCII stand-ins of one cell each
(``+-|``, ``#`` for blocks, ``.:`` for braille dots), and anything else the
encoding lacks as ``?`` per cell: the layout stays as measured.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import unicodedata
from collections.abc import Iterator
from functools import cache
from typing import IO, Any

from rich.cells import cell_len

#: Glyphs with a one-cell ASCII stand-in (box drawing, blocks and braille are generated below).
_STAND_INS = {
    "●": "*",
    "◐": "~",
    "✓": "v",
    "✗": "x",
    "◆": "+",
    "⚑": "!",
    "▲": "^",
    "▼": "v",
    "▶": ">",
    "⏎": "<",
    "↑": "^",
    "↓": "v",
    "←": "<",
    "→": ">",
    "…": "~",
    "·": ".",
    "×": "x",
    "—": "-",
    "–": "-",
    "━": "=",
    "≈": "~",
    "÷": "/",
    "±": "+",
    "²": "2",
    "µ": "u",
    "⠀": " ",
    "▁": "_",
    "▂": "_",
    "▃": "-",
    "▄": "-",
    "▅": "=",
    "▆": "=",
    "▇": "#",
    "█": "#",
    "▏": "|",
    "▎": "|",
    "▍": "|",
    "▌": "#",
    "▋": "#",
    "▊": "#",
    "▉": "#",
    "┆": ":",
    "┊": ":",
}


def _box(char: str) -> str:
    name = unicodedata.name(char, "")
    if "DASH VERTICAL" in name:
        return ":"
    horizontal, vertical = "HORIZONTAL" in name, "VERTICAL" in name
    if horizontal and not vertical:
        return "-"
    if vertical and not horizontal:
        return "|"
    return "+"


def _braille(code: int) -> str:
    dots = bin(code - 0x2800).count("1")
    return " " if dots == 0 else "." if dots <= 2 else ":"


def _table() -> dict[int, str]:
    table = {ord(k): v for k, v in _STAND_INS.items()}
    for code in range(0x2500, 0x2580):  # box drawing
        table.setdefault(code, _box(chr(code)))
    for code in range(0x2580, 0x25A0):  # block elements
        table.setdefault(code, "#")
    for code in range(0x2800, 0x2900):  # braille patterns
        table.setdefault(code, _braille(code))
    return table


ASCII_TABLE = _table()
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def can_draw(encoding: str | None) -> bool:
    """Whether text in ``encoding`` can carry the app's glyphs (box drawing, braille, ●)."""
    try:
        "╭─╮│●⣿▁✓⚑…".encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def needs_ascii(stream: IO[str] | None = None) -> bool:
    """Whether the terminal stream (stderr, where Textual draws) cannot encode the app's glyphs."""
    stream = stream if stream is not None else sys.__stderr__
    return stream is not None and not can_draw(getattr(stream, "encoding", None))


@cache
def _encodable(char: str, encoding: str) -> bool:
    try:
        char.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


@cache
def _table_for(encoding: str) -> dict[int, str]:
    """The stand-ins for the glyphs ``encoding`` lacks (Latin-1 keeps its ``·`` and ``×``)."""
    return {code: ascii for code, ascii in ASCII_TABLE.items() if not _encodable(chr(code), encoding)}


def to_ascii(text: str, encoding: str = "ascii") -> str:
    """``text`` with every glyph ``encoding`` lacks replaced by a stand-in of
    the same width (escape sequences are ASCII and pass through)."""
    text = text.translate(_table_for(encoding))
    return _NON_ASCII.sub(lambda m: _keep_or_mask(m.group(), encoding), text)


def _keep_or_mask(char: str, encoding: str) -> str:
    return char if _encodable(char, encoding) else "?" * max(1, cell_len(char))


def ascii_driver(base: type[Any], encoding: str = "ascii") -> type[Any]:
    """``base`` (a Textual driver class) writing every frame through ``to_ascii``."""

    class AsciiDriver(base):
        def write(self, data: str) -> None:
            super().write(to_ascii(data, encoding))

    AsciiDriver.__name__ = f"Ascii{base.__name__}"
    return AsciiDriver


@contextlib.contextmanager
def drawing_on_terminal() -> Iterator[None]:
    """While inside, stderr's file descriptor is the terminal when stderr is
    redirected but stdout (or else the controlling terminal) is one."""
    try:
        redirected = not os.isatty(2)
    except OSError:
        redirected = True
    terminal = _terminal_fd() if redirected else None
    if terminal is None:
        yield
        return
    saved = os.dup(2)
    try:
        sys.stderr.flush()
        os.dup2(terminal, 2)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if terminal != 1:
            os.close(terminal)


def _terminal_fd() -> int | None:
    """A descriptor of the terminal: stdout if it is one, else ``/dev/tty``."""
    with contextlib.suppress(OSError):
        if os.isatty(1):
            return 1
    if not os.isatty(0):
        return None  # no terminal to draw on at all: let Textual find out
    try:
        return os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
