"""Bad input gives one clear line on stderr and SNAPSHOT.md's exit status."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trainwatch.cli import EXIT_NO_RUNS, EXIT_OK, EXIT_USAGE, main


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainwatch", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int) -> None:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trainwatch: ")


def test_missing_path(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("snapshot", str(tmp_path / "nope")), EXIT_NO_RUNS)


def test_folder_without_runs(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello, this is not a training log\n")
    result = run_cli("snapshot", str(tmp_path))
    assert result.returncode == EXIT_NO_RUNS
    assert "no training runs found" in result.stderr and "Traceback" not in result.stderr


def test_truncated_json(corpus: Path, tmp_path: Path) -> None:
    data = (corpus / "llm_tii_json" / "run_20251113_225009.json").read_bytes()
    (tmp_path / "run.json").write_bytes(data[: len(data) // 2])
    result = run_cli("snapshot", str(tmp_path / "run.json"))
    assert result.returncode == EXIT_NO_RUNS
    assert "Traceback" not in result.stderr


def test_unreadable_file(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    target = tmp_path / "run.json"
    shutil.copyfile(corpus / "llm_tii_json" / "run_20251031_173650.json", target)
    if os.geteuid() != 0:
        target.chmod(0)
    else:  # root reads through permission bits: make the open fail as it would

        def denied(*args: object, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr("trainwatch.ingest.source.open_regular", denied)
    assert main(["snapshot", str(target)]) == EXIT_NO_RUNS
    err = capsys.readouterr().err
    assert err.strip() == f"trainwatch: cannot read {target}: Permission denied"


@pytest.mark.parametrize(
    "args",
    [
        ["snapshot", "x", "--target", "0"],
        ["snapshot", "x", "--target", "abc"],
        ["snapshot", "x", "--format", "xml"],
        ["snapshot", "x", "--now", "yesterday"],
        ["snapshot", "x", "--frobnicate"],
        ["snapshot"],
    ],
)
def test_bad_arguments(args: list[str]) -> None:
    assert_one_line_error(run_cli(*args), EXIT_USAGE)


def test_bad_config(corpus: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[runs\nname = 1")
    assert_one_line_error(run_cli("snapshot", str(corpus / "llm_tii_json"), "--config", str(config)), EXIT_USAGE)


def test_target_override_and_now(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(corpus / "llm_tii_json" / "run_20251113_225009.json")
    assert main(["snapshot", path, "-f", "json", "--target", "4000", "--now", "2025-11-14T15:00:00"]) == EXIT_OK
    out = capsys.readouterr().out
    assert '"target": 4000' in out and '"progress_pct": 50.0' in out


def test_never_writes_beside_the_logs(corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    shutil.copytree(corpus / "llm_tii_json", folder)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    for kind in ("table", "json", "md", "csv", "html"):
        assert run_cli("snapshot", str(folder), "-f", kind).returncode == EXIT_OK
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    assert after == before


def test_table_is_the_default(corpus: Path) -> None:
    result = run_cli("snapshot", str(corpus / "llm_tii_json"))
    assert result.returncode == EXIT_OK
    assert "Run" in result.stdout and "finished" in result.stdout


def test_ascii_reaches_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``trainwatch --ascii DIR`` draws with ASCII only; without it the app decides from the terminal."""
    seen: list[object] = []

    def fake_run_app(paths: list[Path], **kwargs: object) -> int:
        seen.append(kwargs.get("ascii_glyphs"))
        return 0

    monkeypatch.setattr("trainwatch.tui.app.run_app", fake_run_app)
    assert main(["--ascii", str(tmp_path)]) == 0
    assert main([str(tmp_path)]) == 0
    assert seen == [True, None]
