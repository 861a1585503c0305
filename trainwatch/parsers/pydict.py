"""Python dict reprs as a log prints them (``print(logs)``, ``str(logs)``).

HF's Trainer prints its logs as ``str(dict)``: ``{'loss': 2.31, 'grad_norm':
1.2, 'learning_rate': 2e-05, 'epoch': 0.5}``. ``ast.literal_eval`` reads
that safely (never ``eval``), except for what ``repr`` writes that is no
literal: ``nan`` and ``inf`` (a diverged loss), and NumPy 2 scalars,
``np.float64(0.5)`` (metrics from a ``compute_metrics`` that returns NumPy
values). Those are rewritten first, outside string literals only.
"""

from __future__ import annotations

import ast
import math
import re

#: Longer text is no log dict a Trainer printed (and literal_eval's cost grows with it).
MAX_CHARS = 65536
# What "{:.4g}" writes for a float (a bounded length keeps float() cheap).
_FORMATTED = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)")
_MAX_NUMBER = 32
_NAN_MARK = "\x00nan"
# String literals (left alone), NumPy scalar calls, and the bare non-finite names.
_TOKEN = re.compile(
    r"""'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|\b(?:np|numpy)\.(?:float|int|uint)\d*\(|(?<![\w.])(?:nan|inf)\b"""
)


# A dict of plain numbers under plain keys, as repr writes them. Possessive
# quantifiers: no backtracking on a long hostile line; bounded digit runs:
# int() refuses over 4,300 digits (those take literal_eval's way, which refuses them too).
_NUMBER = r"-?(?:\d{1,30}+(?:\.\d{0,30}+)?(?:e[-+]?\d{1,4}+)?|nan|inf)"
_FLAT = re.compile(rf"\{{(?:'[^'\\\n]*+': {_NUMBER}(?:, '[^'\\\n]*+': {_NUMBER})*+)?\}}")
_ITEM = re.compile(rf"'([^'\\\n]*+)': ({_NUMBER})")
_FLOATY = re.compile(r"[.eni]")


def _rewrite(m: re.Match[str]) -> str:
    token = m.group(0)
    if token[0] in "'\"":
        return token
    if token == "nan":
        return repr(_NAN_MARK)
    if token == "inf":
        return "1e999"  # a float literal that overflows to inf
    return "("  # np.float64(0.5) -> (0.5)


def parse_pydict(text: str) -> dict[str, object] | None:
    """The dict ``text`` is the repr of (keys as strings), or ``None``.

    Values are what ``literal_eval`` gives, with ``nan`` as ``float("nan")``
    and ``inf`` as ``float("inf")``.
    """
    if len(text) > MAX_CHARS or not text.startswith("{"):
        return None
    if _FLAT.fullmatch(text) is not None:
        # The common shape, a Trainer's own log: read without compiling it
        # (literal_eval parses to an AST first: 5x the cost, on every step).
        return {key: float(value) if _FLOATY.search(value) else int(value) for key, value in _ITEM.findall(text)}
    try:
        value = ast.literal_eval(_TOKEN.sub(_rewrite, text))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    out: dict[str, object] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            continue
        out[key] = math.nan if item == _NAN_MARK else item
    return out


def number(value: object) -> float | None:
    """A numeric value as a float (NaN and inf kept); bools are no numbers.

    Newer transformers' ``ProgressCallback.on_log`` writes every float as a
    string, ``f"{v:.4g}"`` (``{'loss': '0.5822', 'learning_rate':
    '1.387e-08', 'epoch': '3'}``): such a string is that number, as printed.
    """
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    if type(value) is str and len(value) <= _MAX_NUMBER and _FORMATTED.fullmatch(value):
        return float(value)
    return None
