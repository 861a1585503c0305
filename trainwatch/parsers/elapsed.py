"""Per-step times from a log's running "elapsed since the start" figure.

LLaMA-Factory's and ms-swift's JSONL logs print no per-step time, only the
wall time elapsed since ``on_train_begin`` at each log (whole seconds). The
mean time of the steps of one logging interval is then the elapsed time it
added over the steps it covered.
"""

from __future__ import annotations


class ElapsedClock:
    """The step and elapsed seconds of the previous log, for the next interval's mean step time."""

    __slots__ = ("_prev",)

    def __init__(self) -> None:
        self._prev: tuple[int, float] | None = None

    def interval_ms(self, step: int, elapsed: float | None) -> float | None:
        """The mean step time (ms) from the previous log to this one, or ``None``."""
        if self._prev is None or elapsed is None:
            return None
        prev_step, prev_elapsed = self._prev
        if step <= prev_step or elapsed <= prev_elapsed:
            # Zero seconds over a fast interval is a rounding artefact, not a
            # time: a 0 ms iteration would poison every median. A clock that
            # went back is a resumed run's new clock.
            return None
        return (elapsed - prev_elapsed) * 1000.0 / (step - prev_step)

    def since(self, step: int, elapsed: float | None) -> float | None:
        """Seconds since the previous log of the same ``step`` (an eval logged
        after that step's train log: the eval's own duration), or ``None``."""
        if self._prev is None or elapsed is None or self._prev[0] != step or elapsed < self._prev[1]:
            return None
        return elapsed - self._prev[1]

    def advance(self, step: int, elapsed: float | None) -> None:
        """The next interval starts here (after a train log, or after an eval
        whose duration belongs to no step)."""
        if elapsed is not None:
            self._prev = (step, elapsed)

    def reset(self) -> None:
        """A resumed run restarted its clock: no interval spans the resume."""
        self._prev = None
