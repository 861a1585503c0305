"""Why no run was found, in one line: the same words from ``snapshot`` and in the app."""

from __future__ import annotations

from collections.abc import Sequence


def no_runs_reason(where: str, problems: Sequence[str], unrecognised: Sequence[tuple[str, str]]) -> str:
    """One line for "no training runs": the problem when there is exactly one
    (``/dev/null is not a file or directory``), what the one file is when
    there is one (``no training runs found: x.bin: binary file``), else the
    summary with the first reason and a count of the others. A document
    caught mid-rewrite is said first: the run is there, only not readable now."""
    busy = [p for p in problems if p.endswith("being written, try again")]
    if busy:
        return busy[0]
    if len(problems) == 1 and not unrecognised:
        return problems[0]
    if len(unrecognised) == 1 and not problems:
        return "no training runs found: {}: {}".format(*unrecognised[0])
    reasons = [*problems, *(f"{path}: {why}" for path, why in unrecognised)]
    line = f"no training runs found under {where}"
    if reasons:
        line += f": {reasons[0]}"
    if len(reasons) > 1:
        line += f" (and {len(reasons) - 1} more)"
    return line
