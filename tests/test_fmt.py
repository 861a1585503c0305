"""What people type for a count, and how counts are written back."""

from __future__ import annotations

import pytest

from trainwatch.core import fmt


@pytest.mark.parametrize(
    ("text", "value"),
    [("2000", 2000), ("2,000", 2000), ("2_000", 2000), (" 38,000 ", 38000), ("2147483647", 2**31 - 1)],
)
def test_parse_count_reads_what_count_writes(text: str, value: int) -> None:
    assert fmt.parse_count(text) == value
    assert fmt.parse_count(fmt.count(value)) == value


@pytest.mark.parametrize("text", ["", "0", "-5", "+5", "1.5", "1e3", "²", "٣", "2147483648", "9" * 40, "two"])
def test_parse_count_refuses_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        fmt.parse_count(text)


@pytest.mark.parametrize(
    ("moment", "shown"),
    [
        ("2025-11-14T18:06", "18:06"),  # today
        ("2025-11-15T02:10", "Sat 02:10"),  # tomorrow
        ("2025-11-10T22:05", "Mon 22:05"),  # four days ago
        ("2025-11-20T09:00", "Thu 09:00"),  # six days on
        ("2025-11-21T09:00", "2025-11-21"),  # a week on: the date
        ("2024-03-15T17:34", "2024-03-15"),
    ],
)
def test_finish_times_have_one_scheme(moment: str, shown: str) -> None:
    from datetime import datetime

    assert fmt.clock(datetime.fromisoformat(moment), datetime(2025, 11, 14, 12, 4)) == shown
