"""srun's --label before every line: found from most lines, stripped before any parser sees them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from trainwatch.ingest import labels
from trainwatch.ingest.labels import Labels
from trainwatch.ingest.source import LogSource

NOW = datetime(2030, 1, 1)


def _nanogpt(steps: range) -> list[str]:
    lines = ["tokens per iteration will be: 8,192", "max_iters = 1000"]
    return lines + [f"iter {s}: loss {4 - s / 1000:.4f}, time 250.00ms, mfu 30.00%" for s in steps]


def test_labelled_by_most_lines_and_repeating_task_ids() -> None:
    srun = "".join(f"{k % 2}: line {k}\n" for k in range(20)).encode()
    assert labels.labelled(srun)
    padded = "".join(f"{k % 12:2d}: line {k}\n" for k in range(40)).encode()  # srun pads ids to the widest
    assert labels.labelled(padded)
    # A step counter printed first on each line is no label: each number once.
    steps = "".join(f"{k}: loss 2.3\n" for k in range(20)).encode()
    assert not labels.labelled(steps)
    # The batch script's lines before the first label do not count; most after it must carry one.
    assert labels.labelled(b"Starting job\nmodule load cuda\n0: a\n0: b\n")
    assert not labels.labelled(b"0: a\nplain\nplain\nplain\n")
    assert labels.unlabel(" 3: iter 1\n10: iter 2\nplain 4: x\n") == "iter 1\niter 2\nplain 4: x\n"


def _figures(path: Path) -> tuple[str | None, int | None, float | None, float | None]:
    source = LogSource(path)
    source.refresh()
    stats = source.agg.stats(NOW)
    return source.format, stats.iter, stats.loss, stats.mean_iter_s


def test_a_labelled_log_reads_as_the_bare_one(tmp_path: Path) -> None:
    bare, tagged = tmp_path / "bare.log", tmp_path / "slurm-7.out"
    lines = _nanogpt(range(0, 500, 10))
    bare.write_text("\n".join(lines) + "\n")
    # The batch script's own echo first (no label), then the task's lines.
    tagged.write_text("Starting at Mon Dec 1\n" + "".join(f"0: {line}\n" for line in lines))
    assert _figures(bare) == _figures(tagged) == ("nanogpt_stdout", 490, 3.51, 0.25)


def test_labels_that_start_after_the_head_are_stripped_as_they_come(tmp_path: Path) -> None:
    log = tmp_path / "slurm-8.out"
    lines = _nanogpt(range(0, 100, 10))
    log.write_text("\n".join(lines[:5]) + "\n")  # read before srun started the labelled tasks
    source = LogSource(log)
    source.refresh()
    with log.open("a") as out:
        out.write("".join(f"0: {line}\n" for line in lines[5:]))
    source.refresh()
    stats = source.agg.stats(NOW)
    assert (source.format, stats.iter, stats.loss) == ("nanogpt_stdout", 90, 3.91)


def test_a_live_labelled_log_written_line_by_line(tmp_path: Path) -> None:
    """flush=True prints through srun: one labelled line an append, the preamble first."""
    log = tmp_path / "slurm-9.out"
    log.write_text("Starting job\n")
    source = LogSource(log)
    source.refresh()
    for line in _nanogpt(range(0, 130, 10)):
        with log.open("a") as out:
            out.write(f"0: {line}\n")
        source.refresh()
    stats = source.agg.stats(NOW)
    assert (source.format, stats.iter, stats.loss, stats.tokens_per_iter) == ("nanogpt_stdout", 120, 3.88, 8192)


def test_a_step_counter_stops_being_taken_for_a_label() -> None:
    steps = Labels()
    for k in range(0, 200, 10):
        steps.see(f"{k}: loss 2.3\n")
    assert not steps.on
