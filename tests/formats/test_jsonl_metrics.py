"""jsonl_metrics: generic JSON-lines metrics with a configurable key mapping."""

from __future__ import annotations

import json
import math
from datetime import datetime

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Iteration, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import FALLBACKS, PARSERS, detect, jsonl_metrics
from trainwatch.parsers.base import ParserSpec

NOW = datetime(2030, 1, 1)


def _feed(lines: list[str], spec: ParserSpec = jsonl_metrics.SPEC) -> list[Record]:
    assert spec.new_line_parser is not None
    parser = spec.new_line_parser()
    return [record for line in lines for record in parser.feed(line)]


def _stats(records: list[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def _jsonl(*objects: dict[str, object]) -> list[str]:
    return [json.dumps(obj) for obj in objects]


def test_default_keys_and_roles() -> None:
    records = _feed(
        _jsonl(
            {
                "step": 10,
                "loss": 3.0,
                "time_ms": 120.5,
                "mfu": 41.2,
                "lr": 6e-4,
                "tokens_per_sec": 5e5,
                "max_steps": 100,
            },
            {"iter": 20, "train_loss": 2.9, "dt": 0.25, "norm": 0.8, "timestamp": "2026-01-02T03:04:05"},
        )
    )
    assert records[0] == RunInfo(target=100)
    first, second = (r for r in records if isinstance(r, Iteration))
    assert (first.iter, first.loss, first.time_ms, first.mfu_pct, first.lr, first.tokens_per_sec) == (
        10,
        3.0,
        120.5,
        41.2,
        6e-4,
        5e5,
    )
    assert (second.iter, second.loss, second.time_ms, second.grad_norm) == (20, 2.9, 250.0, 0.8)
    assert second.wall_time == datetime(2026, 1, 2, 3, 4, 5)
    st = _stats(records)
    assert (st.iter, st.target, st.loss) == (20, 100, 2.9)


def test_eval_lines_and_repeated_step() -> None:
    records = _feed(
        _jsonl(
            {"global_step": 100, "train/loss": 2.0},
            {"global_step": 100, "eval_loss": 2.2},  # eval logged separately at the same step
            {"global_step": 100, "loss": 2.0, "gpu_mem": 30},  # system stats: not a restart
            {"global_step": 200, "loss": 1.8, "val_loss": 1.9},
        )
    )
    assert [(type(r).__name__, r.iter) for r in records] == [
        ("Iteration", 100),
        ("Eval", 100),
        ("Iteration", 100),  # the same step again: the aggregator replaces it
        ("Eval", 200),
        ("Iteration", 200),
    ]
    st = _stats(records)
    assert (st.segments, st.val_loss, st.loss, st.logged_iters) == (1, 1.9, 1.8, 2)
    assert st.events[0] == "eval @ 100: val 2.2000"  # the eval at the repeated step stays


def test_repeated_step_keeps_the_last_value() -> None:
    """Two writers (or a resume that logs its first step again) print one
    step twice: the later line's values win, field by field."""
    records = _feed(
        _jsonl(
            {"step": 10, "loss": 3.0, "time_ms": 100.0, "lr": 1e-3},
            {"step": 10, "loss": 2.9, "tokens_per_sec": 5e4},  # the other writer: no time, a rate
            {"step": 20, "loss": 2.7, "time_ms": 110.0},
            {"step": 20, "loss": 2.6, "time_ms": 120.0},
        )
    )
    its = [r for r in records if isinstance(r, Iteration)]
    assert [(i.iter, i.loss, i.time_ms, i.lr, i.tokens_per_sec) for i in its] == [
        (10, 3.0, 100.0, 1e-3, None),
        (10, 2.9, 100.0, 1e-3, 5e4),
        (20, 2.7, 110.0, None, None),
        (20, 2.6, 120.0, None, None),
    ]
    st = _stats(records)
    assert (st.iter, st.loss, st.segments, st.logged_iters) == (20, 2.6, 1, 2)
    assert st.train_time_logged_s == pytest.approx(0.22)  # 100 ms + 120 ms: the replaced 110 ms left the sum


def test_restart_nan_nested_and_junk() -> None:
    records = _feed(
        [
            "",
            "not json",
            '{"step": 1, "loss": NaN}',  # json.dumps output for a diverged loss
            '{"step": 2, "loss": 2.0',  # cut off
            "[1, 2]",
            '{"loss": 1.0}',  # no step
            '{"step": -1, "loss": 1.0}',
        ]
    )
    its = [r for r in records if isinstance(r, Iteration)]
    assert len(its) == 1 and its[0].loss is not None and math.isnan(its[0].loss)
    assert _stats(records).status == "diverged"
    restart = _feed(_jsonl({"step": 5, "loss": 2.0}, {"step": 9, "loss": 1.9}, {"step": 5, "loss": 1.95}))
    assert _stats(restart).segments == 2


def test_make_spec_remaps_roles() -> None:
    spec = jsonl_metrics.make_spec(jsonl_metrics.parse_keys("iter=trainer.gs,loss=metrics/xent|loss,time_s=sec"))
    lines = _jsonl({"trainer": {"gs": 7}, "metrics/xent": 4.5, "sec": 1.5}, {"trainer": {"gs": 8}, "loss": 4.4})
    assert spec.sniff("\n".join(lines) + "\n", "m.jsonl")
    assert not jsonl_metrics.SPEC.sniff("\n".join(lines) + "\n", "m.jsonl")
    its = [r for r in _feed(lines, spec) if isinstance(r, Iteration)]
    assert [(i.iter, i.loss, i.time_ms) for i in its] == [(7, 4.5, 1500.0), (8, 4.4, None)]


def test_parse_keys_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        jsonl_metrics.parse_keys("speed=tps")
    with pytest.raises(ValueError, match="role=key"):
        jsonl_metrics.parse_keys("loss")
    with pytest.raises(ValueError, match="unknown role"):
        jsonl_metrics.make_spec({"bogus": "x"})
    assert jsonl_metrics.parse_keys(" iter = s , ") == {"iter": ("s",)}
    assert jsonl_metrics.parse_keys("step=gs,eval_loss=v|val") == {"iter": ("gs",), "val_loss": ("v", "val")}


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"speed": "tps"}, "unknown role 'speed'; known roles: iter, loss, "),
        ({"loss": 3}, "loss: expected a JSON key or a list of keys, got 3"),
        ({"loss": []}, "loss: expected a JSON key or a list of keys, got []"),
        ({"loss": ["a", ""]}, "loss: every key must be a non-empty string, got ['a', '']"),
        ({"loss": ["a", 1]}, "loss: every key must be a non-empty string"),
        ({"loss": {"x": 1}}, "loss: expected a JSON key or a list of keys"),
        (["loss"], "expected role = key pairs"),
    ],
)
def test_a_mapping_is_checked_with_one_line_errors(mapping: object, message: str) -> None:
    with pytest.raises(jsonl_metrics.KeyMappingError) as caught:
        jsonl_metrics.make_spec(mapping)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_mapping_from_a_config_file() -> None:
    # What a TOML table gives: role (or alias) -> a key or a list of keys.
    spec = jsonl_metrics.make_spec({"step": "trainer/global_step", "loss": ["train/loss_step", "loss"], "time_s": "s"})
    lines = _jsonl(
        {"trainer/global_step": 1, "train/loss_step": 2.5, "s": 0.5},
        {"trainer/global_step": 2, "loss": 2.4, "s": 0.5},
    )
    assert spec.sniff("\n".join(lines) + "\n", "m.jsonl")
    its = [r for r in _feed(lines, spec) if isinstance(r, Iteration)]
    assert [(i.iter, i.loss, i.time_ms) for i in its] == [(1, 2.5, 500.0), (2, 2.4, 500.0)]


def test_epoch_timestamps() -> None:
    records = _feed(_jsonl({"step": 1, "loss": 2.0, "time": 1767225600.0}, {"step": 2, "loss": 2.0, "time": 0.4}))
    its = [r for r in records if isinstance(r, Iteration)]
    assert its[0].wall_time == datetime.fromtimestamp(1767225600.0)
    assert its[1].wall_time is None  # a duration, not a timestamp


def test_sniff_and_registry_order() -> None:
    head = '{"run": "x"}\n{"step": 0, "loss": 10.9}\n'
    assert jsonl_metrics.SPEC.sniff(head, "metrics.jsonl")
    assert not jsonl_metrics.SPEC.sniff('{"step": 0, "lr": 1}\n', "m.jsonl")  # no loss
    assert not jsonl_metrics.SPEC.sniff("step 0 loss 10\n", "m.log")
    assert not jsonl_metrics.SPEC.sniff('{\n  "global_step": 5,\n  "log_history": []\n}\n', "x.json")
    # Generic after the specific formats (only the text fallbacks follow it).
    assert PARSERS[-1 - len(FALLBACKS)] is jsonl_metrics.SPEC
    lf = b'{"current_steps": 5, "total_steps": 10, "loss": 1.0, "step": 5}\n'
    spec = detect(lf, "trainer_log.jsonl")
    assert spec is not None and spec.format == "llamafactory_jsonl"
    generic = detect(b'{"step": 5, "loss": 1.0}\n', "x.jsonl")
    assert generic is not None and generic.format == "jsonl_metrics"
