"""First contact with the command line: help, completion, the config's place, the piped table."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainwatch import cli, config

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainwatch", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_help_is_the_apps_with_examples_exit_codes_and_config(tmp_path: Path) -> None:
    result = run("--help", env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert result.returncode == 0
    text = result.stdout
    assert text.startswith("usage: trainwatch [PATH ...] [options]")
    for needed in ("--target N", "--poll SECONDS", "examples:", "exit status:", "130", "snapshot PATH..."):
        assert needed in text, needed
    assert str(tmp_path / "xdg" / "trainwatch" / "config.toml") in text
    assert run("watch", "--help", env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")}).stdout == text


def test_every_option_and_argument_has_help() -> None:
    parsers = cli.parsers()
    subparsers = next(a for a in parsers.top._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in subparsers.choices.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"trainwatch {name}: {action.dest} has no help"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    result = run("completion", shell)
    assert result.returncode == 0 and "trainwatch" in result.stdout and "_ARGCOMPLETE" in result.stdout


@pytest.mark.parametrize(
    ("line", "expected"),
    [("trainwatch sn", "snapshot"), ("trainwatch snapshot --fo", "--format"), ("trainwatch --po", "--poll-network")],
)
def test_completion_answers(tmp_path: Path, line: str, expected: str) -> None:
    out = tmp_path / "out"
    env = {
        "_ARGCOMPLETE": "1",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "_ARGCOMPLETE_IFS": " ",
        "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run(
        [sys.executable, "-m", "trainwatch"], env={**os.environ, **env}, cwd=tmp_path, timeout=60, check=False
    )
    assert expected in out.read_text().split()


def test_config_lives_under_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TRAINWATCH_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    file = tmp_path / "xdg" / "trainwatch" / "config.toml"
    assert config.default_config_file() == file
    assert config.config_path(None) is None
    file.parent.mkdir(parents=True)
    file.write_text('[runs.a]\nname = "A"\n')
    assert config.config_path(None) == file


def test_a_piped_table_fits_100_columns_and_keeps_eta(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs"
    for k in range(3):
        log = run_dir / f"nanogpt_gpt2_124M_sweep_lr{k}e-4_warmup700_batch512" / "train.log"
        log.parent.mkdir(parents=True)
        lines = [f"iter {i}: loss {4 - i / 100:.4f}, time {120 + k:.2f}ms, mfu 30.00%" for i in range(0, 600, 10)]
        log.write_text("max_iters = 5000\n" + "\n".join(lines) + "\n")
    result = run("snapshot", str(run_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "ETA" in lines[0]
    names = [line.split("  ")[0] for line in lines[1:4]]
    assert len(set(names)) == 3, names  # cut, but told apart
