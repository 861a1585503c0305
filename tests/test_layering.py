"""The package tree is the pipeline: no stage imports from a later one.

files and hosts (``ingest``) -> ``parsers`` -> ``core`` -> ``outputs`` /
``tui``, with ``system`` beside the run and the face (``cli``, ``demo``,
``wiring``, ``config``) wiring them together. Read from the source with
``ast``, including imports inside functions and under ``TYPE_CHECKING``:
a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "trainwatch"

#: What each stage may import from trainwatch besides itself.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "parsers": {"core.records"},
    "ingest": {"core", "parsers"},
    "outputs": {"core", "__version__"},
    "system": {"core"},
    "tui": {"core", "outputs"},
}


def _stage(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None  # top-level modules are the face


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, dotted name below trainwatch)`` of every trainwatch import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "trainwatch":
                found += [(node.lineno, alias.name) for alias in node.names]
            elif node.module.startswith("trainwatch."):
                found.append((node.lineno, node.module.removeprefix("trainwatch.")))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name.removeprefix("trainwatch."))
                for a in node.names
                if a.name.startswith("trainwatch.")
            ]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if _stage(p) is not None)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_a_stage_imports_only_from_earlier_stages(path: Path) -> None:
    stage = _stage(path)
    assert stage in ALLOWED, f"{stage}/ is a new sub-package: give it a row in ALLOWED"
    allowed = ALLOWED[stage] | {stage}
    wrong = [
        f"line {line}: trainwatch.{name}"
        for line, name in _imports(path)
        if not any(name == a or name.startswith(a + ".") for a in allowed)
    ]
    assert not wrong, f"{path.relative_to(PACKAGE)} reaches past its stage: {wrong}"


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    """The rule is not vacuous: a core module importing the watcher is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from trainwatch.ingest.watcher import Watcher\n    from trainwatch import cli\n")
    assert _imports(bad) == [(2, "ingest.watcher"), (3, "cli")]


def test_textual_and_watchdog_stay_in_their_rooms() -> None:
    """ruff's banned-api says the same; this keeps it true if the lint config drifts."""
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] != "tui":
            assert "from textual" not in text and "import textual" not in text, rel
        if str(rel) not in ("ingest/watches.py", "ingest/watcher.py"):
            assert "from watchdog" not in text and "import watchdog" not in text, rel
