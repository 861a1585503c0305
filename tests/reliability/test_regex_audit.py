"""Every regular expression of the parsers and exports, called the way the
code calls it, stays linear on long hostile lines: no catastrophic
backtracking, even in a branch only some parser state reaches.

The calls are read from the source (``NAME.search(``, ``NAME.fullmatch(`` …),
so a pattern used only anchored (``fullmatch``) is not failed for being
quadratic under ``search``, and a new call site is audited automatically.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from types import ModuleType

import pytest

import trainwatch.parsers

from .helpers import deadline, scale

LENGTH = 100_000
#: A linear scan of 100 KB takes milliseconds; quadratic takes minutes. A
#: hang guard, not a speed test (speed is in benchmarks/).
LIMIT_S = 5.0
METHODS = ("search", "match", "fullmatch", "finditer", "findall", "sub", "split")


def modules() -> list[ModuleType]:
    names = [f"trainwatch.parsers.{m.name}" for m in pkgutil.iter_modules(trainwatch.parsers.__path__)]
    return [importlib.import_module(n) for n in [*names, "trainwatch.outputs.export", "trainwatch.tui.cells"]]


def audited() -> list[tuple[str, str, re.Pattern[str], str]]:
    """(module, name, pattern, method) for every pattern call in the source."""
    out = []
    for module in modules():
        source = inspect.getsource(module)
        for name, value in vars(module).items():
            if not isinstance(value, re.Pattern) or not isinstance(value.pattern, str):
                continue
            for method in METHODS:
                if re.search(rf"\b{re.escape(name)}\.{method}\(", source):
                    out.append((module.__name__.rsplit(".", 1)[-1], name, value, method))
    return out


CASES = audited()


def hostile_lines(pattern: re.Pattern[str], length: int) -> dict[str, str]:
    """Long lines made of the pattern's own literals, and of single characters."""
    words = re.findall(r"[A-Za-z_:|/%=.,\[\]()~*#│├└─-]{2,}", pattern.pattern)
    units = {"own words": " ".join(words) + " 1 " if words else "x"}
    units.update({repr(c): c for c in "9a =[.,-:|\t\x1b"})
    units["word digit"] = "a1 "
    units["own words, no spaces"] = "".join(words) + "1" if words else "y"
    return {k: (u * (length // len(u) + 1))[:length] for k, u in units.items()}


def test_the_audit_sees_the_patterns() -> None:
    assert len(CASES) > 40


@pytest.mark.parametrize(("module", "name", "pattern", "method"), CASES, ids=[f"{m}.{n}.{f}" for m, n, _, f in CASES])
def test_linear_on_long_lines(module: str, name: str, pattern: re.Pattern[str], method: str) -> None:
    call = getattr(pattern, method)
    length = scale(LENGTH, 10 * LENGTH)  # --full: 1 MB lines, ten times the time
    limit = LIMIT_S * length / LENGTH
    for what, line in hostile_lines(pattern, length).items():
        with deadline(limit, f"{module}.{name}.{method} on {length:,} chars of {what}"):
            result = call("", line) if method == "sub" else call(line)
            if method == "finditer":
                for _ in result:
                    pass
