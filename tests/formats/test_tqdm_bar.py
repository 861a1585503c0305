"""The pieces under hf_trainer_stdout: tqdm frames and their clock, Python dict reprs."""

from __future__ import annotations

import math

import pytest

from trainwatch.parsers.pydict import MAX_CHARS, parse_pydict
from trainwatch.parsers.tqdm_bar import BarClock, Frame, parse_frame

from .hf_console_sim import Bar


@pytest.mark.parametrize(
    ("segment", "desc", "n", "total", "elapsed", "rate", "unit", "postfix"),
    [
        (" 45%|████▌     | 900/2000 [1:23:45<1:40:00,  5.12s/it]", "", 900, 2000, 5025, 1 / 5.12, "it", ""),
        ("  0%|          | 0/1755 [00:00<?, ?it/s]", "", 0, 1755, 0, None, "it", ""),
        (" 13%|█▎        | 201/1500 [00:16<01:48, 11.97it/s]", "", 201, 1500, 16, 11.97, "it", ""),
        (
            "Map:  40%|████      | 5637/14000 [00:07<00:09, 853.37 examples/s]",
            *("Map", 5637, 14000, 7, 853.37, "examples", ""),
        ),
        (
            "Loading checkpoint shards:  20%|██        | 1/5 [00:03<00:12,  3.25s/it]",
            *("Loading checkpoint shards", 1, 5, 3, 1 / 3.25, "it", ""),
        ),
        (
            "Training: 50%|#####     | 5/10 [100:00:01<?, ?it/s, loss=0.5, lr=1e-05]",
            *("Training", 5, 10, 360001, None, "it", "loss=0.5, lr=1e-05"),
        ),
    ],
)
def test_frame_grammar(
    segment: str, desc: str, n: int, total: int, elapsed: int, rate: float | None, unit: str, postfix: str
) -> None:
    frame = parse_frame(segment)
    assert frame is not None
    assert (frame.desc, frame.n, frame.total, frame.elapsed_s, frame.unit, frame.postfix) == (
        desc,
        n,
        total,
        elapsed,
        unit,
        postfix,
    )
    assert frame.rate == (pytest.approx(rate) if rate is not None else None)
    assert segment[frame.end :] == ""


@pytest.mark.parametrize(
    "segment",
    [
        "",
        "45%|",
        "100%|██████████| 3/3 [00:01",  # cut off by the terminal width
        "|██████████| 3/3 [00:01<00:00, 2.1it/s]",  # no percentage
        "10it [00:01, 9.8it/s]",  # no total: not the Trainer's bar
        " 45%|████▌     | 9999999999999/2000 [00:01<00:01, 1.00it/s]",
    ],
)
def test_not_a_frame(segment: str) -> None:
    assert parse_frame(segment) is None


def test_glued_text_after_a_frame() -> None:
    segment = " 11%|█▏        | 200/1755 [1:11:26<8:59:28, 20.82s/it]{'loss': 2.1095, 'epoch': 0.02}"
    frame = parse_frame(segment)
    assert frame is not None and segment[frame.end :] == "{'loss': 2.1095, 'epoch': 0.02}"


def _frames(steps: list[float], draw: list[bool] | None = None) -> list[Frame]:
    bar = Bar(len(steps))
    drawn = [bar.display()]
    for k, seconds in enumerate(steps):
        drawn.append(bar.update(seconds, draw=draw[k] if draw else True))
    return [f for text in drawn if text and (f := parse_frame(text.lstrip("\r"))) is not None]


def test_clock_undoes_the_smoothing() -> None:
    steps = [7.1, 0.9, 0.8, 0.95, 30.0, 0.85, 0.9, 0.8, 1.2, 0.9]  # an evaluation before step 5
    frames = _frames(steps)
    clock = BarClock.starting_at(frames[0])
    recovered = [clock.update(f) for f in frames[1:]]
    assert recovered == pytest.approx(steps, rel=0.03)
    # The shown rate alone smears the 30 s step over the ones after it.
    assert 1 / frames[6].rate > 5  # type: ignore[operator]


def test_clock_over_updates_of_several_steps() -> None:
    steps = [2.0] * 12
    draw = [k % 3 != 1 for k in range(12)]  # every third update not drawn
    frames = _frames(steps, draw)
    clock = BarClock.starting_at(frames[0])
    assert [clock.update(f) for f in frames[1:]] == pytest.approx([2.0] * len(frames[1:]), rel=0.03)


def test_clock_falls_back_to_the_shown_rate() -> None:
    # A rate that is no EMA of these updates (another smoothing): the shown rate, per step.
    frame = parse_frame("  1%|          | 1/100 [00:02<03:18,  2.00s/it]")
    later = parse_frame("  2%|▏         | 2/100 [00:09<03:18,  3.00s/it]")
    assert frame is not None and later is not None
    clock = BarClock.starting_at(frame)
    assert clock.update(later) == pytest.approx(3.0)  # undone at a=0.3: 5.3 s, where the clock says 7


def test_pydict_reprs() -> None:
    logs = parse_pydict(
        "{'loss': nan, 'grad_norm': inf, 'x': -inf, 'learning_rate': np.float64(2e-05), "
        "'eval_acc': numpy.float32(0.5), 'n': np.int64(7), 'note': 'nan inf np.float64(1)', 'epoch': 0.5}"
    )
    assert logs is not None
    assert math.isnan(logs["loss"])  # type: ignore[arg-type]
    assert (logs["grad_norm"], logs["x"]) == (math.inf, -math.inf)
    assert (logs["learning_rate"], logs["eval_acc"], logs["n"]) == (2e-05, 0.5, 7)
    assert logs["note"] == "nan inf np.float64(1)"  # strings are left alone


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{'loss': ",
        "{'loss': tensor(1.2, device='cuda:0')}",
        "{'loss': __import__('os').system('true')}",  # never evaluated
        "[1, 2]",
        "{" + "'a': 1, " * (MAX_CHARS // 8) + "}",
    ],
)
def test_pydict_refuses(text: str) -> None:
    assert parse_pydict(text) is None
