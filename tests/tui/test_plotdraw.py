"""The chart renderer: braille lines, markers, marker columns and axes as text."""

from __future__ import annotations

import math
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult

from trainwatch.tui.charts import Chart
from trainwatch.tui.plotdraw import AXIS_STYLE, MARK_STYLE, draw
from trainwatch.tui.plotspec import MARKS, ChartSpec, Trace

RED, GREEN = (255, 0, 0), (0, 255, 0)
# Braille dots (column, row within the cell) -> bit, as Unicode numbers them:
# dots 1-3 down the left, 4-6 down the right, 7 and 8 along the bottom.
BITS = {(0, 0): 0x01, (0, 1): 0x02, (0, 2): 0x04, (1, 0): 0x08, (1, 1): 0x10, (1, 2): 0x20, (0, 3): 0x40, (1, 3): 0x80}

# The hand-computed layout used below: 11 × 6 cells with data 0..15 on both
# axes. y ticks 0 and 10 ("10" is 2 wide) leave a 8 × 4 plot area, i.e. a
# 16 × 16 dot grid, so one data unit is exactly one dot on both axes and the
# value (x, y) lights the dot at column x, row 15 - y.
W, H, LEFT, PLOT_W, PLOT_H = 11, 6, 3, 8, 4


def spec_of(
    *traces: Trace,
    vlines: tuple[float, ...] = (),
    dashed: tuple[float, ...] = (),
    ylim: tuple[float, float] | None = None,
) -> ChartSpec:
    return ChartSpec("t", traces, vlines=vlines, dashed=dashed, ylim=ylim)


def line(xs: Sequence[float], ys: Sequence[float], color: tuple[int, int, int] = RED) -> Trace:
    return Trace(tuple(xs), tuple(ys), color)


def points(xs: Sequence[float], ys: Sequence[float], color: tuple[int, int, int] = GREEN) -> Trace:
    return Trace(tuple(xs), tuple(ys), color, kind="points")


def lit(lines: list[Text]) -> set[tuple[int, int]]:
    """The braille dots lit in the plot area, as (dot column, dot row)."""
    # The area is above the axis row and right of its corner.
    plot_h = next(i for i, t in enumerate(lines) if "└" in t.plain)
    left = lines[plot_h].plain.index("└") + 1
    dots = set()
    for row in range(plot_h):
        for col, char in enumerate(lines[row].plain[left:]):
            code = ord(char) - 0x2800
            if 0 <= code <= 0xFF:
                dots |= {(col * 2 + dx, row * 4 + dy) for (dx, dy), bit in BITS.items() if code & bit}
    return dots


def style_at(text: Text, index: int) -> Style | str | None:
    found = [span.style for span in text.spans if span.start <= index < span.end]
    assert len(found) <= 1, "spans overlap"
    return found[0] if found else None


def rgb(style: Style | str | None) -> tuple[int, int, int] | None:
    assert isinstance(style, Style) and style.color is not None
    triplet = style.color.get_truecolor()
    return (triplet.red, triplet.green, triplet.blue)


def test_a_diagonal_lights_one_dot_per_column_in_the_expected_cells() -> None:
    lines = draw(spec_of(line([0, 15], [15, 0])), W, H)
    assert [t.plain for t in lines] == [
        "  │⠑⢄      ",
        "10┤  ⠑⢄    ",
        "  │    ⠑⢄  ",
        " 0┤      ⠑⢄",
        "  └┬────┬──",
        "   0    10 ",
    ]
    assert lit(lines) == {(k, k) for k in range(16)}
    assert rgb(style_at(lines[0], LEFT)) == RED
    assert style_at(lines[0], 0) == AXIS_STYLE
    assert style_at(lines[4], 2) == AXIS_STYLE


def test_a_steep_line_has_no_gaps() -> None:
    lines = draw(spec_of(line([0, 3, 15], [0, 15, 15])), W, H)
    dots = lit(lines)
    # From dot (0, 15) up to (3, 0): every dot row is lit, in columns 0..3.
    assert {row for col, row in dots if col <= 3} == set(range(16))
    assert {col for col, row in dots if row == 0} == set(range(3, 16))
    for col in range(4):  # each column's run is contiguous
        rows = sorted(row for c, row in dots if c == col)
        assert rows == list(range(rows[0], rows[-1] + 1))


def test_a_flat_line_is_one_row_of_dots() -> None:
    lines = draw(spec_of(line([0, 7, 15], [5, 5, 5])), 20, 6)
    dots = lit(lines)
    # Flat data is padded ±10% (labels 4.5 .. 5.5 leave 16 columns): the
    # line sits mid-plot, on dot row 7.5 of 0..15, which rounds to 8.
    assert dots == {(col, 8) for col in range(32)}
    assert [t.plain[:4] for t in lines[:4]] == ["5.5┤", "   │", "5.0┤", "4.5┤"]


def test_points_mark_their_cell_over_lines() -> None:
    lines = draw(spec_of(line([0, 15], [15, 0]), points([6, 2], [11, 13])), W, H)
    # (6, 11) is dot (6, 4): cell column 3 of plot row 1; (2, 13) is on the line.
    assert lines[1].plain[LEFT + 3] == "●"
    assert rgb(style_at(lines[1], LEFT + 3)) == GREEN
    assert lines[0].plain[LEFT + 1] == "●"  # drawn over the line's dots
    assert sum(t.plain.count("●") for t in lines) == 2


def test_points_outside_ylim_are_left_out() -> None:
    spec = spec_of(line([0, 15], [0, 15]), points([5, 10], [99, -3]), ylim=(0, 15))
    assert not any("●" in t.plain for t in draw(spec, W, H))


def test_vlines_show_where_there_are_no_dots() -> None:
    lines = draw(spec_of(line([0, 15], [15, 0]), vlines=(10, 99)), W, H)
    column = LEFT + 5  # x = 10 is dot column 10, cell column 5
    assert [t.plain[column] for t in lines[:PLOT_H]] == ["│", "│", "⢄", "│"]
    assert style_at(lines[0], column) == MARK_STYLE
    assert rgb(MARK_STYLE) == MARKS
    assert rgb(style_at(lines[2], column)) == RED
    # 99 is beyond the data: no column anywhere else.
    assert sum(t.plain[LEFT:].count("│") for t in lines[:PLOT_H]) == 3


def test_dashed_columns_mark_checkpoints_under_eval_columns() -> None:
    lines = draw(spec_of(line([0, 15], [15, 0]), vlines=(10,), dashed=(10, 4)), W, H)
    # x = 4 and 5 are cell column 2, where y = 15 - x is 11 and 10: dot rows 4
    # and 5, in cell row 1 (the dots at its top left and one down on the right).
    assert [t.plain[LEFT + 2] for t in lines[:PLOT_H]] == ["┆", "⠑", "┆", "┆"]
    assert style_at(lines[0], LEFT + 2) == MARK_STYLE
    # At x = 10 an eval and a checkpoint: the eval's │ is drawn.
    assert [t.plain[LEFT + 5] for t in lines[:PLOT_H]] == ["│", "│", "⢄", "│"]


def test_y_labels_are_right_aligned_on_their_tick_rows() -> None:
    lines = draw(spec_of(line([0, 1], [0, 100]), ylim=(0, 100)), 40, 12)
    # Ticks 0, 50, 100 over 10 plot rows = 40 dot rows: 100 is dot row 0,
    # 50 is dot row 19.5 (rounds to 20, plot row 5), 0 is dot row 39.
    prefixes = [t.plain[:4] for t in lines[:10]]
    assert prefixes == ["100┤", *["   │"] * 4, " 50┤", *["   │"] * 3, "  0┤"]
    assert lines[10].plain.startswith("   └┬")


def test_x_labels_sit_under_their_ticks() -> None:
    lines = draw(spec_of(line([0, 1000], [0, 1])), 60, 10)
    axis, labels = lines[-2].plain, lines[-1].plain
    words = [(start, word) for start, word in _words(labels)]
    assert [w for _, w in words] == ["0", "200", "400", "600", "800", "1000"][: len(words)]
    assert len(words) >= 4
    for start, word in words:
        assert axis[start + (len(word) - 1) // 2] == "┬"


def _words(row: str) -> list[tuple[int, str]]:
    out, start = [], None
    for i, char in enumerate(row + " "):
        if char != " " and start is None:
            start = i
        elif char == " " and start is not None:
            out.append((start, row[start:i]))
            start = None
    return out


def _value(label: str) -> float:
    scale = {"k": 1e3, "M": 1e6, "B": 1e9}.get(label[-1], 1.0)
    return float(label[:-1] if scale != 1.0 else label) * scale


@settings(max_examples=150, deadline=None)
@given(
    low=st.floats(-1e10, 1e10),
    span=st.floats(1e-3, 1e10),
    width=st.integers(5, 200),
)
def test_x_labels_never_overlap_or_leave_the_row(low: float, span: float, width: int) -> None:
    lines = draw(spec_of(line([low, low + span], [0, 1])), width, 8)
    axis, labels = lines[-2].plain, lines[-1].plain
    assert len(labels) == width
    words = _words(labels)
    # Merged labels would not parse, or would not be centred on a tick.
    values = [_value(word) for _, word in words]
    assert values == sorted(values) and len(set(values)) == len(values)
    for start, word in words:
        assert axis[start + (len(word) - 1) // 2] == "┬"


def test_nan_breaks_the_line() -> None:
    xs, ys = [0, 5, 6, 10, 15], [15, 10, math.nan, 5, 0]
    broken = lit(draw(spec_of(line(xs, ys)), W, H))
    assert not {col for col, _ in broken} & {6, 7, 8, 9}
    assert {(0, 0), (5, 5), (10, 10), (15, 15)} <= broken
    joined = lit(draw(spec_of(line([0, 5, 10, 15], [15, 10, 5, 0])), W, H))
    assert joined == {(k, k) for k in range(16)}


def test_inf_breaks_the_line_like_nan() -> None:
    spec = spec_of(line([0, 7, 15], [15, math.inf, 0]), line([math.nan], [1]))
    assert lit(draw(spec, W, H)) == {(0, 0), (15, 15)}


def test_empty_traces_are_ignored() -> None:
    plain = [t.plain for t in draw(spec_of(line([0, 15], [15, 0])), W, H)]
    noisy = spec_of(line([], []), line([0, 15], [15, 0]), points([], []))
    assert [t.plain for t in draw(noisy, W, H)] == plain


def test_no_finite_point_shows_the_empty_message() -> None:
    spec = ChartSpec("t", (line([1, 2], [math.nan, math.nan]),), empty="nothing yet")
    lines = draw(spec, 20, 5)
    assert [t.plain for t in lines] == [" " * 20] * 2 + ["    nothing yet     "] + [" " * 20] * 2


def test_ylim_clips_a_spike_to_the_edge_of_the_plot() -> None:
    spec = spec_of(line([0, 6, 7, 8, 15], [0, 6, 1000, 6, 15]), ylim=(0, 15))
    lines = draw(spec, W, H)
    dots = lit(lines)
    assert (6, 0) in dots or (7, 0) in dots  # runs up to the top edge
    # Columns 6 and 7 are lit from the line's level (dot row 9) to the top.
    assert {row for col, row in dots if col in (6, 7)} == set(range(10))
    assert all(0 <= col < PLOT_W * 2 and 0 <= row < PLOT_H * 4 for col, row in dots)
    assert lines[4].plain == "  └┬────┬──"
    assert set(lines[5].plain) <= set(" 0123456789")


def test_a_segment_entirely_outside_ylim_is_not_drawn() -> None:
    spec = spec_of(line([0, 5, 10, 15], [0, 50, 60, 15]), ylim=(0, 15))
    dots = lit(draw(spec, W, H))
    # 5 -> 10 is above the plot: nothing in between, clipped ends at the top.
    assert not {col for col, _ in dots} & {6, 7, 8, 9}
    assert {row for col, row in dots if col in (1, 2, 3, 4, 5)} >= {0}


def test_traces_sharing_a_cell_merge_dots_and_the_later_colour_wins() -> None:
    # y = 15 is dot row 0 and y = 14 dot row 1: both in plot row 0.
    spec = spec_of(line([0, 15], [15, 15], RED), line([0, 15], [14, 14], GREEN), ylim=(0, 15))
    lines = draw(spec, W, H)
    assert lines[0].plain[LEFT:] == "⠛" * PLOT_W
    assert rgb(style_at(lines[0], LEFT)) == GREEN


def test_one_point_is_drawn_mid_plot() -> None:
    assert len(lit(draw(spec_of(line([3], [7])), 30, 10))) == 1


def test_many_points_are_drawn_like_their_envelope() -> None:
    # 10,000 points over 16 dot columns: each column is lit from its lowest
    # to its highest value, like drawing every segment would.
    xs = [i * 15 / 9999 for i in range(10000)]
    ys = [7.5 + 7.5 * math.sin(i / 37) for i in range(10000)]
    dots = lit(draw(spec_of(line(xs, ys), ylim=(0, 15)), W, H))
    assert {col for col, _ in dots} == set(range(16))
    assert {row for _, row in dots} == set(range(16))


def test_ranges_too_narrow_for_floats_are_widened() -> None:
    # 1e16 .. 1e16 + 2: ticks 0.1 apart would be lost in rounding (nice_ticks
    # never finished); a denormal y range would scale to infinity.
    for xs, ys in (((1e16, 1e16 + 2), (0.0, 1.0)), ((0.0, 1.0), (0.0, 5e-324)), ((3.0,), (6.6e-316,))):
        lines = draw(spec_of(line(xs, ys)), 200, 10)
        assert [t.cell_len for t in lines] == [200] * 10
        assert lit(lines)


finite = st.floats(-1e12, 1e12, allow_nan=False)
value = st.one_of(finite, st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1e300]))
trace = st.builds(
    lambda pairs, kind, color: Trace(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), color, kind=kind),
    st.lists(st.tuples(value, value), max_size=60),
    st.sampled_from(["line", "points"]),
    st.tuples(*[st.integers(0, 255)] * 3),
)
limits = st.one_of(st.none(), st.tuples(finite, finite).map(lambda p: (min(p), max(p))))


@settings(max_examples=300, deadline=None)
@given(
    traces=st.lists(trace, max_size=4),
    vlines=st.lists(value, max_size=5),
    ylim=limits,
    width=st.integers(1, 200),
    height=st.integers(1, 60),
)
def test_every_line_has_exactly_width_cells(
    traces: list[Trace], vlines: list[float], ylim: tuple[float, float] | None, width: int, height: int
) -> None:
    spec = ChartSpec("t", tuple(traces), vlines=tuple(vlines), ylim=ylim)
    lines = draw(spec, width, height)
    assert len(lines) == height
    for text in lines:
        assert text.cell_len == width
        assert not text.style  # spans only, in order, not overlapping: see charts._strip
        at = 0
        for span in text.spans:
            assert at <= span.start < span.end <= len(text.plain)
            at = span.end


async def test_the_widget_shows_the_drawing_under_the_title() -> None:
    spec = spec_of(line([0, 15], [15, 0]))

    class One(App[None]):
        CSS = "Chart { width: 13; height: 8; }"  # W × H inside the border

        def compose(self) -> ComposeResult:
            yield Chart(spec, id="c")

    app = One()
    async with app.run_test(size=(30, 12)) as pilot:
        chart = app.query_one(Chart)
        await pilot.pause()
        assert chart.border_title == "t"
        shown = [strip.text for strip in chart.render_lines(chart.region.reset_offset)]
        assert shown[1:-1] == [f"│{t.plain}│" for t in draw(spec, W, H)]
        drawn = chart._drawn
        chart.spec = spec_of(line([0, 15], [15, 0]))  # equal: no new drawing
        chart.refresh()  # a repaint for some other reason
        await pilot.pause()
        chart.render_lines(chart.region.reset_offset)
        assert chart._drawn is drawn
        rising = spec_of(line([0, 15], [0, 15]))
        chart.spec = rising
        await pilot.pause()
        shown = [strip.text for strip in chart.render_lines(chart.region.reset_offset)]
        assert shown[1:-1] == [f"│{t.plain}│" for t in draw(rising, W, H)]
        chart.spec = None
        await pilot.pause()
        assert chart.border_title is None
        assert any("loading…" in strip.text for strip in chart.render_lines(chart.region.reset_offset))
