"""benchmarks.core.Row: every figure prints, even one measured as nothing at all."""

from __future__ import annotations

from benchmarks.core import Row


def test_a_zero_figure_against_its_baseline() -> None:
    # An idle app over the smoke run's short window can use no CPU tick at all.
    row = Row("idle", "8 live runs", 0.0, "% core", "minimal Textual app", 0.2)
    assert row.ratio_text == "×0"
    assert row.line().endswith("vs minimal Textual app 0.2 % core ×0")


def test_ratios_above_and_below_a_tenth() -> None:
    assert Row("x", "y", 0.3, "s", "floor", 0.2).ratio_text == "×1.50"
    assert Row("x", "y", 0.01, "s", "floor", 0.2).ratio_text == "1/20"
    assert Row("x", "y", 0.3, "s", "floor", 0.0).ratio_text == ""  # no baseline figure: no ratio
