"""Run names cut to a width stay told apart (issue 18: three rows read ``log124M · llmc_gpt2_124…``)."""

from __future__ import annotations

import pytest
from rich.cells import cell_len

from trainwatch.core.shorten import shorten, shorten_all

SWEEP = [
    "log124M · llmc_gpt2_124M_a100_full_19560steps",
    "log124M · llmc_gpt2_124M_h100_full_19560steps",
    "log124M · llmc_gpt2_124M_h100_half_9780steps",
    "qwen3-600m-demo",
]


@pytest.mark.parametrize("width", [8, 12, 16, 20, 24, 30, 40])
def test_a_sweep_stays_distinguishable_at_every_width(width: int) -> None:
    shown = shorten_all(SWEEP, width)
    assert len(set(shown)) == len(SWEEP), shown
    assert all(cell_len(s) <= width for s in shown)
    assert shown[3] == shorten("qwen3-600m-demo", width)  # a name with no twin is cut as always


def test_the_differing_part_is_kept_and_the_shared_head_cut() -> None:
    shown = shorten_all(SWEEP, 24)
    assert "a100_full_19560steps" in shown[0] and "h100_full_19560steps" in shown[1]
    assert shown[0].startswith("log") and "…" in shown[0]


def test_names_that_fit_are_left_alone() -> None:
    names = ["GPT-2 1.36B", "LLaMA 2 1.36B"]
    assert shorten_all(names, 40) == names


def test_wide_characters_count_two_cells() -> None:
    shown = shorten_all(["東京 run 日本語 aaaa", "東京 run 日本語 bbbb"], 10)
    assert len(set(shown)) == 2 and all(cell_len(s) <= 10 for s in shown)


def test_identical_names_stay_identical() -> None:
    assert shorten_all(["same name here", "same name here"], 8) == ["same na…", "same na…"]
