"""The key bar's choice of keys, the ASCII fallback, the log tail: pure parts, no app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rich.cells import cell_len

from trainwatch.outputs.reasons import no_runs_reason
from trainwatch.tui import logtail, terminal
from trainwatch.tui.keybar import Item, arrange

MAIN = [
    Item("enter", "⏎", "detail", False),
    Item("space", "space", "mark", False),
    Item("c", "c", "compare", False),
    Item("slash", "/", "filter", False),
    Item("s", "s", "sort", False),
    Item("f", "f", "hide finished", False),
    Item("p", "p", "problems", False),
    Item("z", "z", "smooth", False),
    Item("l", "l", "log", False),
    Item("e", "e", "export", False),
    Item("t", "t", "target", False),
    Item("question_mark", "?", "help", True),
    Item("q", "q", "quit", True),
]
PALETTE = Item("ctrl+p", "^p", "palette", False)


def _width(chosen: list[tuple[Item, str]]) -> int:
    return sum(len(gap) + len(i.shown) + 1 + len(i.label) for i, gap in chosen)


@pytest.mark.parametrize("width", [20, 40, 80, 100, 200])
def test_help_and_quit_stay_whatever_the_width(width: int) -> None:
    chosen = arrange(MAIN, width, PALETTE)
    labels = [i.label for i, _ in chosen]
    assert labels[-2:] == ["help", "quit"] or labels[-3:-1] == ["help", "quit"]
    if width >= 40:
        assert _width(chosen) <= width


def test_narrow_bars_tighten_then_drop_the_last_declared() -> None:
    at_80 = [i.label for i, _ in arrange(MAIN, 80, PALETTE)]
    assert at_80[:3] == ["detail", "mark", "compare"] and "export" not in at_80 and "palette" not in at_80
    at_200 = arrange(MAIN, 200, PALETTE)
    assert [i.label for i, _ in at_200][-1] == "palette" and all(gap == "  " for _, gap in at_200)


def test_ascii_stand_ins_keep_every_width() -> None:
    line = "╭─ Runs · ● 2 running ─╮│⣿⡇⠀▁▃█ 27.6%⚑ ✓ ◐ ✗ ◆ ▲ ⏎ … ┆ 東京"
    ascii = terminal.to_ascii(line)
    assert ascii.isascii()
    assert cell_len(ascii) == cell_len(line)
    assert ascii.startswith("+- Runs . * 2 running -+|")
    assert "??" in ascii  # a CJK character the encoding lacks: two cells of "?"


def test_latin1_keeps_its_own_characters() -> None:
    assert terminal.to_ascii("· × ●", "latin-1") == "· × *"


def test_which_encodings_need_the_fallback() -> None:
    assert terminal.can_draw("utf-8")
    assert not terminal.can_draw("ascii") and not terminal.can_draw("iso-8859-1")
    assert not terminal.can_draw("no-such-codec")


CRASH = """\
step 100 | loss 3.21
[rank0]: Traceback (most recent call last):
[rank0]:   File "train.py", line 9, in <module>
[rank0]:     loss.backward()
[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB
[rank1]: NCCL error in: ProcessGroupNCCL.cpp:1970
"""


def test_the_first_fatal_traceback_is_the_error_and_what_it_was() -> None:
    tail = logtail.tail_of("train.log", CRASH.encode())
    assert tail.error_at == 1 and tail.error_kind == "CUDA out of memory"
    assert logtail.window(tail, 3, at_error=True) == (0, 3)
    assert logtail.window(tail, 3, at_error=False) == (3, 6)


def test_teardown_tracebacks_are_not_the_error_but_an_nccl_line_is() -> None:
    text = "Exception ignored in: <function X.__del__>\nTraceback (most recent call last):\nfoo\n"
    text += "Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1)\n"
    tail = logtail.tail_of("a.log", text.encode())
    assert (tail.error_at, tail.error_kind) == (3, "NCCL error")
    assert logtail.tail_of("b.log", b"step 1\nstep 2\n").error_at is None


def test_progress_bars_show_their_last_state_without_colours() -> None:
    tail = logtail.tail_of("c.log", b" 10%|#  |\r 20%|##  |\r\x1b[31m 30%|###|\x1b[0m\r\nnext\n", cut=False)
    assert tail.lines == (" 30%|###|", "next")
    cut = logtail.tail_of("d.log", b"tial line\nwhole\n", cut=True)
    assert cut.lines == ("whole",)


def test_a_fifo_or_a_json_document_is_never_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "train.log"
    os.mkfifo(fifo)
    assert logtail.read_tail(str(fifo)).note == "not a regular file"  # would block if opened
    assert "JSON" in logtail.read_tail(str(tmp_path / "run.json")).note
    assert "gpu1" in logtail.read_tail("/runs/a.log", host="gpu1").note


def test_no_runs_reason_is_the_snapshot_line() -> None:
    assert no_runs_reason("/dev/null", ["/dev/null is not a file or directory"], []) == (
        "/dev/null is not a file or directory"
    )
    assert no_runs_reason("d", [], [("d/x.bin", "binary file")]) == "no training runs found: d/x.bin: binary file"
    assert no_runs_reason("d", [], [("a", "binary file"), ("b", "empty")]).endswith("(and 1 more)")
    assert no_runs_reason("d", [], []) == "no training runs found under d"
