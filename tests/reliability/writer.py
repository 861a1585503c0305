"""A training process stand-in for the torture tests: writes a log the way real
loggers do, badly, and reports exactly what it wrote.

Run as ``python writer.py MODE PATH COUNT SEED``. It talks to the test over
stdin/stdout, one JSON object per line:

* it prints ``{"event": "ready"}`` once the file exists, and at a handshake
  point ``{"event": "sync", "iter": N}``, then waits for a line on stdin
  (the reader has caught up) before it rotates or truncates; it then writes
  a burst of lines, more bytes than the old file held, and only then prints
  ``{"event": "rotated"}``: the reader, paused meanwhile, meets a new file
  already grown past its old read offset (the hard case for a tailer);
* at the end it prints ``{"event": "done", "truth": {...}}``: the ground
  truth the reader's figures must equal.

Modes:

``rewrite``       the seed's JSON run log, rewritten in place COUNT times the
                  way its logger does it: ``open("w")``, the text in chunks
                  with flushes and short sleeps, close. No temp file, no rename.
``append``        nanoGPT console lines appended in odd-sized chunks (lines cut
                  in the middle between flushes).
``rotate``        like append, but every ROTATE_EVERY lines ``log`` is renamed to
                  ``log.1`` and a new ``log`` is created (logrotate's default).
``delete``        like rotate, but the old file is deleted instead of kept.
``copytruncate``  every ROTATE_EVERY lines ``log`` is copied to ``log.1`` and then
                  truncated in place, while the writer keeps its O_APPEND handle.
``copytruncate-noappend``  the same with a plain ``open("w")`` handle, whose
                  next write lands at its old offset (the file gets a hole).

Deliberately free of trainwatch imports: it is the "other process".
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from datetime import datetime, timedelta

ROTATE_EVERY = 40
BURST = 2 * ROTATE_EVERY  # lines written after a rotation before the reader may look
EVAL_INTERVAL = 50
START = datetime(2025, 11, 13, 22, 50, 9)


def say(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def wait_for_reader() -> None:
    if not sys.stdin.readline():
        raise SystemExit("the test went away")


class Truth:
    """What was logged, summed the way METRICS.md sums it, in the same order."""

    def __init__(self) -> None:
        self.iter = -1
        self.logged = 0
        self.train_ms = 0.0
        self.n_train_timed = 0

    def add(self, step: int, time_ms: float, is_eval: bool) -> None:
        self.iter = max(self.iter, step)
        self.logged += 1
        if not is_eval:
            self.train_ms += time_ms
            self.n_train_timed += 1

    def report(self) -> dict[str, object]:
        return {
            "iter": self.iter,
            "logged_iters": self.logged,
            "train_time_logged_s": self.train_ms / 1000 if self.n_train_timed else None,
        }


# ------------------------------------------------------------ JSON rewrites


def document(entries: list[dict[str, object]], evals: list[dict[str, object]], final: bool) -> dict[str, object]:
    doc: dict[str, object] = {
        "run_name": "run_torture",
        "start_time": START.isoformat(),
        "config": {
            "out_dir": "out-torture-1b",
            "eval_interval": EVAL_INTERVAL,
            "log_interval": 1,
            "eval_at_start": False,
            "max_iters": 100_000,
            "batch_size": 4,
            "gradient_accumulation_steps": 8,
            "block_size": 1024,
            "n_layer": 12,
            "n_head": 12,
            "n_embd": 768,
        },
        "startup_info": {"model": {"total_params": 124_000_000}},
        "training_iterations": entries,
        "eval_steps": evals,
        "checkpoints": [{"iter": e["iter"], "path": "out-torture-1b/ckpt.pt"} for e in evals],
        "metadata": {"world_size": 2, "dtype": "bfloat16"},
    }
    if final:
        doc["end_time"] = (START + timedelta(hours=5)).isoformat()
        doc["summary"] = {"total_iterations": len(entries)}
    return doc


def rewrite(path: str, count: int, rng: random.Random) -> Truth:
    truth = Truth()
    entries: list[dict[str, object]] = []
    evals: list[dict[str, object]] = []
    step = 0
    for round_ in range(count):
        for _ in range(rng.randint(1, 3)):
            time_ms = round(rng.uniform(20_000, 30_000), 3)
            is_eval = step > 0 and step % EVAL_INTERVAL == 0
            if is_eval:
                time_ms += 60_000
                evals.append({"iter": step, "train_loss": 2.5, "val_loss": 2.6})
            mfu: object = -100.0 if step == 0 else {"mfu_percent": round(rng.uniform(25, 30), 2)}
            entries.append({"iter": step, "loss": round(10 - step / 1000, 4), "time_ms": time_ms, "mfu": mfu})
            truth.add(step, time_ms, is_eval)
            step += 1
        final = round_ == count - 1
        text = json.dumps(document(entries, evals, final), indent=2).encode()
        # Non-atomic, as the seed's logger does: truncate, then write in pieces.
        with open(path, "wb") as handle:
            cuts = sorted(rng.sample(range(1, len(text)), 4))
            last = 0
            for cut in [*cuts, len(text)]:
                handle.write(text[last:cut])
                handle.flush()
                last = cut
                if rng.random() < 0.5:
                    time.sleep(rng.uniform(0, 0.002))
        if round_ == 0:
            say("ready")
    return truth


# ------------------------------------------------------------- line logs


PREAMBLE = f"tokens per iteration will be: 8,192\nmax_iters = 100000\neval_interval = {EVAL_INTERVAL}\n"


def iter_line(step: int, rng: random.Random) -> tuple[str, float]:
    time_ms = round(rng.uniform(90, 110), 2)
    return f"iter {step}: loss {10 - step / 1000:.4f}, time {time_ms:.2f}ms, mfu {rng.uniform(30, 40):.2f}%\n", time_ms


def append_lines(path: str, count: int, rng: random.Random, mode: str) -> Truth:
    truth = Truth()
    binary = mode == "copytruncate-noappend"
    handle = open(path, "wb" if binary else "ab")  # noqa: SIM115 (reopened on rotation)
    handle.write(PREAMBLE.encode())
    handle.flush()
    say("ready")
    pending = b""
    step = 0
    while step < count:
        step += 1
        line, time_ms = iter_line(step, rng)
        truth.add(step, time_ms, step % EVAL_INTERVAL == 0)
        pending += line.encode()
        # Flush odd-sized pieces: a reader often sees half a line.
        if rng.random() < 0.6:
            cut = rng.randrange(len(pending) + 1)
            handle.write(pending[:cut])
            handle.flush()
            pending = pending[cut:]
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0, 0.002))
        if mode != "append" and step % ROTATE_EVERY == 0 and step < count - BURST:
            handle.write(pending)
            handle.flush()
            pending = b""
            say("sync", iter=step)  # the reader has seen everything so far ...
            wait_for_reader()
            if mode in ("rotate", "delete"):
                handle.close()
                if mode == "rotate":
                    os.replace(path, path + ".1")
                else:
                    os.unlink(path)
                handle = open(path, "ab")  # noqa: SIM115
            else:  # ... then copytruncate, and the writer goes on with its old handle
                shutil.copyfile(path, path + ".1")
                with open(path, "r+b") as cut_handle:
                    cut_handle.truncate(0)
            burst = []
            for _ in range(BURST):
                step += 1
                line, time_ms = iter_line(step, rng)
                truth.add(step, time_ms, step % EVAL_INTERVAL == 0)
                burst.append(line)
            handle.write("".join(burst).encode())
            handle.flush()
            say("rotated")
    handle.write(pending)
    handle.close()
    return truth


def main() -> None:
    mode, path, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    truth = rewrite(path, count, rng) if mode == "rewrite" else append_lines(path, count, rng, mode)
    say("done", truth=truth.report())


if __name__ == "__main__":
    main()
