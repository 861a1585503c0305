"""The small mutable pieces ``hf_console`` keeps while it ties dicts to steps."""

from __future__ import annotations

from trainwatch.parsers.tqdm_bar import BarClock
from trainwatch.records import Record


class Bar:
    """The training bar: its total, where it is, and whether it is known to be the Trainer's."""

    __slots__ = ("clock", "confirmed", "elapsed_s", "locked", "n", "total")

    def __init__(self, total: int, clock: BarClock) -> None:
        self.total = total
        self.clock = clock
        self.n = 0
        self.elapsed_s = 0
        #: A dict was written through it, or its total is the stated target.
        self.confirmed = False
        #: Bars of another total are not training (until a new run's banner).
        self.locked = True


class Slot:
    """One iteration being held back until the dicts due for it are placed."""

    __slots__ = ("after", "grad_norm", "loss", "lr", "step", "time_ms", "tokens")

    def __init__(self, step: int, time_ms: float | None) -> None:
        self.step = step
        self.time_ms = time_ms
        self.loss: float | None = None
        self.lr: float | None = None
        self.grad_norm: float | None = None
        self.tokens: int | None = None
        #: Records that follow the iteration (its evaluation, a save, the end).
        self.after: list[Record] = []


class Due:
    """A dict the Trainer wrote through the bar: its step (from the redraw) and its content (when it comes)."""

    __slots__ = ("logs", "step")

    def __init__(self) -> None:
        self.step: int | None = None
        self.logs: dict[str, object] | None = None
