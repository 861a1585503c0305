"""A small model of what an HF Trainer run writes to its console, for the
hf_trainer_stdout tests: tqdm's frames (``format_meter`` with the default
bar format, its EMA rate), ``tqdm.write`` (clear, message, redraw), nested
bars one row down, and stdout buffered apart from the bars (stderr).

Written from tqdm's and transformers' code paths, not from the parser, so
that the tests check the parser against the printing side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ALPHA = 0.3  # tqdm's default smoothing


def clock(seconds: float) -> str:
    """tqdm.format_interval."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


@dataclass
class Bar:
    """One tqdm bar: frames as format_meter draws them."""

    total: int
    desc: str = ""
    unit: str = "it"
    pos: int = 0  # 1 for a nested bar (the evaluation's)
    n: int = 0
    elapsed: float = 0.0
    last_print_n: int = 0
    _dn: float = 0.0  # raw EMAs (tqdm's bias correction cancels in their ratio)
    _dt: float = 0.0
    _last_len: int = 0

    def frame(self) -> str:
        rate = self._dn / self._dt if self._dt else None
        if rate:
            inv = 1 / rate
            rate_fmt = f"{inv:5.2f}s/{self.unit}" if inv > 1 else f"{rate:5.2f}{self.unit}/s"
            remaining = clock((self.total - self.n) / rate)
        else:
            rate_fmt, remaining = f"?{self.unit}/s", "?"
        frac = self.n / self.total
        filled = int(frac * 10)
        bar = "█" * filled + " " * (10 - filled)
        left = f"{self.desc}: " if self.desc else ""
        return f"{left}{frac * 100:3.0f}%|{bar}| {self.n}/{self.total} [{clock(self.elapsed)}<{remaining}, {rate_fmt}]"

    def _sp(self, text: str) -> str:
        out = "\r" + text + " " * max(self._last_len - len(text), 0)
        self._last_len = len(text)
        return out

    def display(self) -> str:
        text = self._sp(self.frame())
        return "\n" * self.pos + text + "\x1b[A" * self.pos

    def update(self, seconds: float, dn: int = 1, draw: bool = True) -> str:
        """``dn`` more iterations after ``seconds``; drawn (and the EMA moved) only if ``draw``."""
        self.elapsed += seconds
        self.n += dn
        if not draw:
            return ""
        step_dn = self.n - self.last_print_n
        step_dt = self.elapsed - getattr(self, "_last_t", 0.0)
        self._dn = ALPHA * step_dn + (1 - ALPHA) * self._dn
        self._dt = ALPHA * step_dt + (1 - ALPHA) * self._dt
        self.last_print_n, self._last_t = self.n, self.elapsed
        return self.display()

    def clear(self) -> str:
        text = "\n" * self.pos + self._sp("") + "\r" + "\x1b[A" * self.pos
        return text

    def close_leave(self) -> str:
        """close() with leave=True: the overall average rate, then a newline."""
        self._dn, self._dt = float(self.n), self.elapsed
        return self.display() + "\n"

    def close_clear(self) -> str:
        """close() with leave=False at a lower row."""
        return "\n" * self.pos + self._sp("") + "\x1b[A" * self.pos


@dataclass
class Console:
    """stderr (bars, unbuffered) and stdout (dicts, buffered unless ``line_buffered``) into one file, or two."""

    line_buffered: bool = True
    split: bool = False  # stdout and stderr to two files (Slurm --output/--error)
    err: list[str] = field(default_factory=list)
    out: list[str] = field(default_factory=list)
    _pending: list[str] = field(default_factory=list)

    def stderr(self, text: str) -> None:
        self.err.append(text)

    def stdout(self, text: str) -> None:
        if self.line_buffered:
            self._emit_stdout(text)
        else:
            self._pending.append(text)

    def flush_stdout(self) -> None:
        """What Python does when the buffer fills, a tqdm bar is created, or the process exits."""
        text, self._pending = "".join(self._pending), []
        if text:
            self._emit_stdout(text)

    def _emit_stdout(self, text: str) -> None:
        (self.out if self.split else self.err).append(text)

    def write(self, bars: list[Bar], message: str) -> None:
        """tqdm.write: clear every bar, print to stdout, redraw them."""
        for bar in bars:
            self.stderr(bar.clear())
        self.stdout(message + "\n")
        for bar in bars:
            self.stderr(bar.display())

    def text(self, stream: str = "err") -> str:
        self.flush_stdout()
        return "".join(self.out if stream == "out" else self.err)


def trainer_run(
    console: Console,
    steps: list[float],
    logging_steps: int,
    eval_steps: int | None = None,
    eval_seconds: float = 30.0,
    eval_batches: int = 5,
    loss: float = 2.0,
    extra: str = "",
    end: bool = True,
    prefix_total: int | None = None,
) -> dict[int, float]:
    """Draw a Trainer's training loop; the losses logged, by step."""
    total = prefix_total or len(steps)
    bar = Bar(total)
    console.flush_stdout()  # tqdm's status_printer flushes stdout when a bar is made
    console.stderr(bar.display())
    losses: dict[int, float] = {}
    for index, seconds in enumerate(steps, start=1):
        console.stderr(bar.update(seconds))
        if index % logging_steps == 0:
            value = round(loss / math.sqrt(index), 4)
            losses[index] = value
            logs = f"'loss': {value}, 'grad_norm': 1.25, 'learning_rate': 2e-05{extra}, 'epoch': {index / total:.2f}"
            console.write([bar], "{" + logs + "}")
        if eval_steps and index % eval_steps == 0:
            ev = Bar(eval_batches, pos=1)
            console.flush_stdout()
            console.stderr(ev.display())
            for _ in range(eval_batches):
                console.stderr(ev.update(eval_seconds / eval_batches))
            # Trainer.evaluate logs before on_evaluate closes the bar: both are cleared.
            value = round(loss / index, 4)
            logs = f"'eval_loss': {value}, 'eval_runtime': {eval_seconds}, 'epoch': {index / total:.2f}"
            console.write([bar, ev], "{" + logs + "}")
            console.stderr(ev.close_clear())
            bar.elapsed += eval_seconds  # the evaluation is wall time of the next step
    if end:
        runtime = round(bar.elapsed, 4)
        logs = f"'train_runtime': {runtime}, 'train_samples_per_second': 9.9, 'train_steps_per_second': 0.4"
        console.write([bar], "{" + logs + ", 'train_loss': 1.5, 'epoch': 1.0}")
        console.stderr(bar.close_leave())
    return losses
