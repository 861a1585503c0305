"""Smoothing, rolling medians and log ticks, computed by hand."""

from __future__ import annotations

import math

import pytest

from trainwatch.tui import trend
from trainwatch.tui.trend import ChartOptions


def test_ema_is_debiased_as_tensorboard_does() -> None:
    # weight 0.5: 0.5·1 / (1-0.5) = 1; (0.25 + 1.0) / 0.75 = 1.6667; (0.625 + 1.5) / 0.875 = 2.4286
    assert trend.ema([1.0, 2.0, 3.0], 0.5) == pytest.approx((1.0, 5 / 3, 2.125 / 0.875))
    # The first point is the point itself, whatever the weight (no pull towards zero).
    assert trend.ema([12.0, 11.0], 0.99)[0] == pytest.approx(12.0)


def test_ema_skips_non_finite_values_and_off_is_identity() -> None:
    out = trend.ema([1.0, math.nan, 3.0], 0.5)
    assert math.isnan(out[1]) and out[2] == pytest.approx((0.25 + 1.5) / 0.75)
    assert trend.ema([1.0, 2.0], 0.0) == (1.0, 2.0)


def test_rolling_median_centred_and_shorter_at_the_ends() -> None:
    # Windows of 3: [1,5] [1,5,2] [5,2,8] [2,8,3] [8,3,9] [3,9,4] [9,4]
    assert trend.rolling_median([1, 5, 2, 8, 3, 9, 4], 3) == (3.0, 2, 5, 3, 8, 4, 6.5)
    assert trend.rolling_median([]) == ()
    nan = trend.rolling_median([math.nan, math.nan], 3)
    assert all(math.isnan(v) for v in nan)


def test_rolling_median_ignores_one_spike() -> None:
    ys = [28.0] * 20
    ys[10] = 340.0  # an eval pass left in
    assert max(trend.rolling_median(ys, 5)) == 28.0


def test_a_steady_rate_is_drawn_flat() -> None:
    assert trend.at_least((27.5, 27.7), [27.6] * 5, 0.2) == pytest.approx((24.84, 30.36))
    assert trend.at_least((10.0, 40.0), [20.0], 0.2) == (10.0, 40.0)  # already wide enough


def test_log_ticks_are_round_values() -> None:
    labels = [trend.log_label(t) for t in trend.log_ticks(math.log10(1.9), math.log10(12.2), 6)]
    assert labels == ["2", "3", "5", "10"]
    assert [trend.log_label(t) for t in trend.log_ticks(-1, 4, 4)] == ["0.1", "10", "1e+03"]


def test_options_cycle() -> None:
    options = ChartOptions()
    seen = []
    for _ in range(4):
        options = options.next_smoothing()
        seen.append(options.smoothing)
    assert seen == [0.6, 0.9, 0.99, 0.0]
    assert ChartOptions(0.9, True).describe() == "EMA 0.9 · log"
    assert ChartOptions().toggled_log().log_y


def test_a_long_series_gets_a_short_median_line() -> None:
    xs = [float(i) for i in range(20_000)]
    ys = [28.0 + (i % 7) * 0.01 for i in range(20_000)]  # 28.00 … 28.06, evenly
    line_x, line_y = trend.median_line(xs, ys)
    assert len(line_x) == trend.LINE_POINTS and line_x[0] == 0.0 and line_x[-1] == 19_999.0
    assert all(28.02 <= y <= 28.04 for y in line_y[1:-1])  # the middle of the spread, not its noise
    assert trend.median_line(xs[:50], ys[:50]) == (tuple(xs[:50]), trend.rolling_median(ys[:50]))
