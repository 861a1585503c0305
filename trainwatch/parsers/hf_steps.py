"""The small mutable pieces ``hf_console`` keeps while it ties dicts to steps."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from trainwatch.core.records import Iteration, Record
from trainwatch.parsers.tqdm_bar import BarClock


class Bar:
    """The training bar: its total, where it is, and whether it is known to be the Trainer's."""

    __slots__ = ("clock", "confirmed", "elapsed_s", "locked", "n", "total")

    def __init__(self, total: int, clock: BarClock) -> None:
        self.total = total
        self.clock = clock
        self.n = 0
        self.elapsed_s = 0
        #: Taken for the training bar: a dict was written through it, its total
        #: is the stated target, or (for now) the log went quiet while it ran.
        self.confirmed = False
        #: Bars of another total are not training (unlocked: until a new
        #: run's banner, or while only a quiet log confirmed it).
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


class DueQueue:
    """The dicts written through the bar, in the order written, none lost.

    Their steps come in that order (each from the redraw after its write), so
    the unresolved ones are at the back; their contents come in that order
    too, so the paid ones (content in) are at the front. Both are counted:
    a buffered stdout leaves hundreds due, and every frame and dict touches
    only the ends.
    """

    __slots__ = ("_paid", "_queue", "_unresolved")

    def __init__(self) -> None:
        self._queue: deque[Due] = deque()
        self._paid = 0
        self._unresolved = 0

    def __len__(self) -> int:
        return len(self._queue)

    def __iter__(self) -> Iterator[Due]:
        return iter(self._queue)

    def add(self) -> None:
        """A write through the bar: its dict is due."""
        self._queue.append(Due())
        self._unresolved += 1

    def resolve(self, step: int) -> None:
        """The redraw after the writes shows ``step``."""
        queue = self._queue
        for back in range(1, self._unresolved + 1):
            queue[-back].step = step
        self._unresolved = 0

    def pay(self, logs: dict[str, object]) -> bool:
        """The next dict came: ``False`` if none was due."""
        if self._paid >= len(self._queue):
            return False
        self._queue[self._paid].logs = logs
        self._paid += 1
        return True

    def settle(self) -> Iterator[Due]:
        """The dues at the front whose step and dict are both in, taken out."""
        queue = self._queue
        while queue and queue[0].step is not None and queue[0].logs is not None:
            self._paid -= 1
            yield queue.popleft()

    def first_step(self, unresolved: int | None) -> int | None:
        """The earliest step a dict is still due for (``unresolved``: where the next redraw will be)."""
        if not self._queue:
            return None
        step = self._queue[0].step
        return unresolved if step is None else step

    def drop_unpaid(self) -> None:
        """Stop waiting for dicts that are not coming."""
        queue = self._queue
        while len(queue) > self._paid:
            queue.pop()
        self._unresolved = 0
        for due in reversed(queue):
            if due.step is not None:
                break
            self._unresolved += 1

    def drop_first(self) -> None:
        """Give up the oldest due (its iterations were held too long)."""
        due = self._queue.popleft()
        self._paid -= due.logs is not None
        self._unresolved -= due.step is None

    def clear(self) -> None:
        self._queue.clear()
        self._paid = self._unresolved = 0


class Held:
    """Iterations held back (rising steps), and the last step handed over."""

    __slots__ = ("released", "slots")

    def __init__(self) -> None:
        self.slots: deque[Slot] = deque()
        self.released: int | None = None

    def __len__(self) -> int:
        return len(self.slots)

    def fresh(self, step: int) -> bool:
        """Whether ``step`` is above every step handed over or held."""
        return (self.released is None or step > self.released) and (not self.slots or step > self.slots[-1].step)

    def slot(self, step: int) -> Slot | None:
        """The held iteration at ``step`` (a new one if ``step`` is fresh); if
        that one is out already, the first held after it."""
        slots = self.slots
        for slot in reversed(slots):
            if slot.step == step:
                return slot
            if slot.step < step:
                break
        if self.fresh(step):
            slots.append(Slot(step, None))
            return slots[-1]
        return next((slot for slot in slots if slot.step > step), None)

    def after(self, step: int, record: Record) -> bool:
        """Put ``record`` right after the held iteration at or before ``step``; ``False`` if none is held."""
        for slot in reversed(self.slots):
            if slot.step <= step:
                slot.after.append(record)
                return True
        return False

    def release(self, out: list[Record], limit: int | None, keep: int) -> None:
        """Hand over, in order, the iterations below ``limit`` but the newest ``keep``."""
        slots = self.slots
        while len(slots) > keep and (limit is None or slots[0].step < limit):
            slot = slots.popleft()
            out.append(
                Iteration(
                    slot.step, slot.loss, slot.time_ms, lr=slot.lr, grad_norm=slot.grad_norm, tokens_seen=slot.tokens
                )
            )
            out.extend(slot.after)
            self.released = slot.step
