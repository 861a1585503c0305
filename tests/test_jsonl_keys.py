"""The JSONL key mapping from the config file (``[jsonl]``) and ``--jsonl-keys``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainwatch.cli import EXIT_NO_RUNS, EXIT_OK, EXIT_USAGE, main

# A hand-written loop's metrics file whose keys no default names.
LINES = [
    {"trainer": {"gs": 10}, "metrics/xent": 3.5, "sec": 1.5, "ckpt_total": 100},
    {"trainer": {"gs": 20}, "metrics/xent": 3.25, "sec": 1.5, "ckpt_total": 100},
    {"trainer": {"gs": 20}, "metrics/val_xent": 3.4},
]


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no ./trainwatch.toml, no user config
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("TRAINWATCH_CONFIG", raising=False)
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in LINES))
    return path


def _snapshot(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict | None, str]:
    status = main(["snapshot", "--format", "json", *args])
    out, err = capsys.readouterr()
    return status, (json.loads(out) if status == EXIT_OK else None), err


def test_without_a_mapping_the_log_is_no_run(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _snapshot(capsys, str(log))
    assert status == EXIT_NO_RUNS and "unrecognised format" in err


def test_the_command_line_mapping(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = "step=trainer.gs,loss=metrics/xent,val_loss=metrics/val_xent,time_s=sec,target=ckpt_total"
    status, data, err = _snapshot(capsys, str(log), "--jsonl-keys", keys)
    assert status == EXIT_OK, err
    run = data["runs"][0]  # type: ignore[index]
    assert (run["format"], run["iter"], run["target"], run["loss"], run["val_loss"]) == (
        "jsonl_metrics",
        20,
        100,
        3.25,
        3.4,
    )
    assert run["mean_iter_s"] == 1.5


def test_the_config_table_and_the_command_line_over_it(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = log.with_name("tw.toml")
    config.write_text('[jsonl]\nstep = "trainer.gs"\nloss = ["nothing/here", "metrics/xent"]\nval_loss = "nope"\n')
    status, data, err = _snapshot(capsys, str(log), "--config", str(config))
    assert status == EXIT_OK, err
    assert (data["runs"][0]["loss"], data["runs"][0]["val_loss"]) == (3.25, None)  # type: ignore[index]
    status, data, err = _snapshot(
        capsys, str(log), "--config", str(config), "--jsonl-keys", "val_loss=metrics/val_xent"
    )
    assert status == EXIT_OK, err
    assert (data["runs"][0]["loss"], data["runs"][0]["val_loss"]) == (3.25, 3.4)  # type: ignore[index]


def test_other_formats_keep_their_own_parsers(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nano = log.with_name("train.log")
    nano.write_text("".join(f"iter {i}: loss 2.0, time 100.00ms, mfu 10.00%\n" for i in range(3)))
    status, data, err = _snapshot(capsys, str(nano), "--jsonl-keys", "step=iter,loss=loss")
    assert status == EXIT_OK, err
    assert data["runs"][0]["format"] == "nanogpt_stdout"  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "config", "says"),
    [
        (["--jsonl-keys", "speed=tps"], None, "--jsonl-keys: unknown role 'speed'; known roles: iter, loss"),
        (["--jsonl-keys", "loss"], None, "--jsonl-keys: expected role=key, got 'loss'"),
        (["--jsonl-keys", "loss=,"], None, "--jsonl-keys: expected role=key, got 'loss='"),
        ([], "[jsonl]\nloss = 3\n", "[jsonl] loss: expected a JSON key or a list of keys, got 3"),
        ([], '[jsonl]\nloss = ["a", 2]\n', "[jsonl] loss: every key must be a non-empty string"),
        ([], '[jsonl]\nspeed = "tps"\n', "[jsonl] unknown role 'speed'"),
        ([], "jsonl = 5\n", "[jsonl] must be a table"),
    ],
)
def test_a_bad_mapping_is_one_line(
    log: Path, capsys: pytest.CaptureFixture[str], args: list[str], config: str | None, says: str
) -> None:
    if config is not None:
        path = log.with_name("bad.toml")
        path.write_text(config)
        args = [*args, "--config", str(path)]
    for command in (["snapshot", str(log)], ["serve-metrics", str(log), "--metrics-port", "0"]):
        status = main([*command, *args])
        err = capsys.readouterr().err
        assert status == EXIT_USAGE
        assert err.count("\n") == 1 and err.startswith("trainwatch: ") and says in err, err
        assert "Traceback" not in err
