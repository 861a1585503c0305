"""Counts in logs: ``parsers.text.to_int``, and the parsers that read counts
out of free text with it. ``str.isdigit`` accepts "²" (``int()`` refuses it):
a hostile or garbled line must be skipped, never raise."""

from __future__ import annotations

import pytest

from trainwatch.parsers.nanogpt_config import literal
from trainwatch.parsers.text import to_int
from trainwatch.parsers.torchtitan import TorchtitanParser


@pytest.mark.parametrize(
    ("text", "signed", "expected"),
    [
        ("12", False, 12),
        (" 8 ", False, 8),
        ("-1", False, None),
        ("-1", True, -1),
        ("²", False, None),
        ("1²", False, None),
        ("٣", False, 3),  # an Arabic-Indic digit: int() reads it, and so do we
        ("", False, None),
        ("-", True, None),
        ("1_000", False, None),
        ("9" * 18, False, int("9" * 18)),
        ("9" * 19, False, None),  # no real count has 19 digits; int() refuses 4,301
    ],
)
def test_to_int(text: str, signed: bool, expected: int | None) -> None:
    assert to_int(text, signed=signed) == expected


def test_a_torchtitan_mesh_line_with_odd_sizes_is_skipped() -> None:
    parser = TorchtitanParser()
    # As torchtitan prints it: the world size is the product of the dimensions (2 × 4).
    (info,) = parser._mesh("Building device mesh with parallelism: dp_replicate=1, dp_shard=2, tp=4")
    assert info.world_size == 8  # type: ignore[attr-defined]
    assert parser._mesh("Building device mesh with parallelism: dp_shard=²") == []
    assert parser._mesh("Building 1-D device mesh with ['dp'], [²]") == []


def test_a_nanogpt_config_product() -> None:
    assert literal("5 * 8") == 40  # stock config/train_gpt2.py: gradient_accumulation_steps = 5 * 8
    assert literal("5 * ²") is None
