"""CLI failure modes beyond tests/test_cli.py: every one ends as one line on
stderr and SNAPSHOT.md's exit status (0 runs found, 1 none found, 2 bad
arguments), never a traceback, a hang or a wrong status."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from trainwatch.cli import EXIT_NO_RUNS, EXIT_OK, EXIT_USAGE, main

LINE = "iter {i}: loss 2.0, time 100.00ms, mfu 10.00%\n"


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainwatch", *args],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        cwd=cwd,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def assert_one_line(result: subprocess.CompletedProcess[str], status: int, says: str = "") -> None:
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trainwatch: "), result.stderr
    assert says in lines[0], lines[0]


@pytest.fixture
def run_log(tmp_path: Path) -> Path:
    path = tmp_path / "train.log"
    path.write_text("".join(LINE.format(i=i) for i in range(1, 21)))
    return path


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--frobnicate"], "unrecognized arguments"),
        (["snapshot", "x", "--tokens-per-iter", "-5"], "--tokens-per-iter"),
        (["snapshot", "x", "--params", "0"], "--params"),
        (["snapshot", "x", "--target", "1.5"], "--target"),
        (["snapshot", "x", "--target", ""], "--target"),
        (["snapshot", "x", "--now", "2025-13-45"], "--now"),
        (["snapshot", "x", "--gpu"], "--gpu"),
        (["snapshot", "x", "-o"], "-o"),
        (["snapshot", "--format", "json"], "PATH"),
        (["snapshot", "x", "-f", "JSON"], "--format"),
        (["watch", "--poll", "0"], "--poll"),
        (["watch", "--poll", "nan"], "--poll"),
        (["watch", "--poll", "inf"], "--poll"),
        (["demo", "--speed", "-1"], "--speed"),
    ],
)
def test_bad_arguments(args: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(args)  # in-process: argparse's errors are what is tested here
    err = capsys.readouterr().err
    assert_one_line(subprocess.CompletedProcess(args, status, "", err), EXIT_USAGE, says)


def test_config_problems(tmp_path: Path, run_log: Path) -> None:
    assert_one_line(
        run_cli("snapshot", str(run_log), "--config", str(tmp_path / "nope.toml")), EXIT_USAGE, "cannot read"
    )
    table = tmp_path / "table.toml"
    table.write_text("runs = 5\n")
    assert_one_line(run_cli("snapshot", str(run_log), "--config", str(table)), EXIT_USAGE, "must be a table")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[runs]\n")
    assert_one_line(run_cli("snapshot", str(run_log), "--config", str(binary)), EXIT_USAGE, "not valid TOML")
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    assert_one_line(run_cli("snapshot", str(run_log), "--config", str(folder)), EXIT_USAGE, "cannot read")


def test_nothing_found(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line(run_cli("snapshot", str(empty)), EXIT_NO_RUNS, "no training runs found")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "model.log").write_bytes(b"\x00\x01\x02" * 1000)  # binary
    (junk / "empty.log").write_text("")
    (junk / "ckpt.pt").write_bytes(b"x")  # not even looked at
    assert_one_line(run_cli("snapshot", str(junk)), EXIT_NO_RUNS, "no training runs found")
    assert_one_line(run_cli("snapshot", str(tmp_path / "a"), str(tmp_path / "b")), EXIT_NO_RUNS, "no training runs")
    assert_one_line(run_cli("snapshot", "/dev/zero"), EXIT_NO_RUNS, "not a file or directory")


def test_a_fifo_does_not_hang(tmp_path: Path) -> None:
    """Opening a FIFO blocks until a writer comes: it must never be opened."""
    os.mkfifo(tmp_path / "pipe.log")
    assert_one_line(run_cli("snapshot", str(tmp_path)), EXIT_NO_RUNS, "not a regular file")
    assert_one_line(run_cli("snapshot", str(tmp_path / "pipe.log")), EXIT_NO_RUNS, "not a file or directory")


def test_some_paths_missing(tmp_path: Path, run_log: Path) -> None:
    result = run_cli("snapshot", str(run_log), str(tmp_path / "missing"), "-f", "json")
    assert result.returncode == EXIT_OK
    assert result.stderr == f"trainwatch: no such file or directory: {tmp_path / 'missing'}\n"
    assert json.loads(result.stdout)["runs"][0]["iter"] == 20


def test_watch_missing_path(tmp_path: Path) -> None:
    assert_one_line(run_cli("watch", str(tmp_path / "missing")), EXIT_NO_RUNS, "no such file or directory")


def test_output_is_a_folder(tmp_path: Path, run_log: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert_one_line(run_cli("snapshot", str(run_log), "-o", str(out)), EXIT_USAGE, "cannot write")
    assert list(out.iterdir()) == []


def test_target_out_of_range_is_one_line(run_log: Path) -> None:
    """A target no log can state (over the int32 columns), or "²" (which
    str.isdigit accepts and int() does not), is a usage error, not a crash
    and not a nonsense progress figure."""
    for bad in ("9" * 30, "2147483648", "²", "0", "-5"):
        result = run_cli("snapshot", str(run_log), "--target", bad, "-f", "json")
        assert_one_line(result, EXIT_USAGE, "--target")
    result = run_cli("snapshot", str(run_log), "--target", "2,147,483,647", "-f", "json")
    assert result.returncode == EXIT_OK and json.loads(result.stdout)["runs"][0]["target"] == 2**31 - 1


def test_file_names_that_are_not_utf8(tmp_path: Path) -> None:
    """Under a strict UTF-8 stdout, a run named after such a file made a
    UnicodeEncodeError traceback (and ``-o`` did too). Now the name's bytes
    go out as they are (as ls prints them); JSON is valid UTF-8 (U+FFFD)."""
    folder = os.fsencode(tmp_path / "runs")
    os.mkdir(folder)
    with open(os.path.join(folder, b"\xff\xfebad.log"), "w") as handle:
        handle.write(LINE.format(i=1))
    strict = {"PYTHONIOENCODING": "utf-8:strict"}
    for kind in ("table", "json"):  # the terminal table, and the text path (csv, md and html take it too)
        result = run_cli("snapshot", str(tmp_path / "runs"), "-f", kind, env=strict)
        assert result.returncode == EXIT_OK and "Traceback" not in result.stderr, (kind, result.stderr)
    for kind in ("table", "json", "csv", "md", "html"):
        assert main(["snapshot", str(tmp_path / "runs"), "-f", kind, "-o", str(tmp_path / f"out.{kind}")]) == EXIT_OK
    data = json.loads((tmp_path / "out.json").read_bytes().decode("utf-8"))
    assert data["runs"][0]["run"] == "\ufffd\ufffdbad"


@pytest.mark.parametrize("kind", ["table", "json"])
def test_broken_pipe(kind: str, run_log: Path) -> None:
    """``trainwatch snapshot | head``: the reader goes away. Exit 0, silently
    (Rich turned it into status 1, which SNAPSHOT.md reserves for "no runs")."""
    folder = run_log.parent
    for i in range(200):
        (folder / f"more{i}.log").write_text(LINE.format(i=i + 1))
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, 1031, 4096)  # F_SETPIPE_SZ: a small pipe fills at once
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "trainwatch", "snapshot", str(folder), "-f", kind],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert result.returncode == EXIT_OK and result.stderr == "", result.stderr


# ----------------------------------------------------- as another user


@pytest.fixture
def as_nobody() -> Iterator[Callable[[list[str]], tuple[int, str]]]:
    """``main(argv)`` in a forked child that dropped to ``nobody``: (status, stderr).

    The tests run as root, which reads through permission bits. Everything
    the CLI imports is imported before the fork (the child may not read the
    interpreter's own files under /root).
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    warm = tempfile.mkdtemp()
    Path(warm, "train.log").write_text(LINE.format(i=1))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for kind in ("table", "json"):
            main(["snapshot", warm, "-f", kind])
        main(["snapshot", os.path.join(warm, "missing")])
    shutil.rmtree(warm)

    def run(argv: list[str]) -> tuple[int, str]:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 99
            try:
                signal.alarm(60)
                os.close(read_end)
                os.dup2(write_end, 2)
                sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
                os.setgid(65534)
                os.setuid(65534)
                with contextlib.redirect_stdout(io.StringIO()):
                    status = main(argv)
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os._exit(status)
        os.close(write_end)
        with os.fdopen(read_end) as handle:
            err = handle.read()
        _, code = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(code), err

    yield run


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="trainwatch-cli-", dir="/tmp"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_unreadable_folder_says_why(as_nobody: Callable[[list[str]], tuple[int, str]], shared: Path) -> None:
    """A folder we may not list: "no training runs found" hid the reason; a file
    inside one made a PermissionError traceback (discover's is_file)."""
    locked = shared / "locked"
    locked.mkdir()
    (locked / "train.log").write_text(LINE.format(i=1))
    (shared / "ok.log").write_text(LINE.format(i=1))
    os.chmod(locked, 0o700)
    assert as_nobody(["snapshot", str(locked)]) == (
        EXIT_NO_RUNS,
        f"trainwatch: cannot read {locked}: Permission denied\n",
    )
    assert as_nobody(["snapshot", str(locked / "train.log")]) == (
        EXIT_NO_RUNS,
        f"trainwatch: cannot read {locked / 'train.log'}: Permission denied\n",
    )
    assert as_nobody(["snapshot", str(shared)]) == (EXIT_OK, f"trainwatch: cannot read {locked}: Permission denied\n")


def test_unreadable_home_config(as_nobody: Callable[[list[str]], tuple[int, str]], shared: Path) -> None:
    """HOME=/root under another user (containers, sudo without -H): looking for
    ~/.config/trainwatch/config.toml raised PermissionError (names.config_path)."""
    (shared / "train.log").write_text(LINE.format(i=1))
    assert os.path.expanduser("~").startswith("/root")
    assert as_nobody(["snapshot", str(shared)]) == (EXIT_OK, "")


def _seed_document(iterations: int) -> bytes:
    entries = [{"iter": k, "loss": 3.0, "time_ms": 1000.0} for k in range(0, iterations, 10)]
    doc = {"run_name": "run_w", "start_time": "2025-11-13T10:00:00", "config": {"max_iters": 100}}
    return json.dumps({**doc, "training_iterations": entries}, indent=2).encode()


def test_a_document_caught_mid_rewrite_is_awaited(tmp_path: Path) -> None:
    """The seed's logger rewrites its JSON in place: a snapshot at that instant
    reads it again for up to ~2 s (issue 16, item 9)."""
    import threading
    import time

    log = tmp_path / "run_w.json"
    whole = _seed_document(50)
    log.write_bytes(whole[: len(whole) // 2])
    finisher = threading.Timer(0.3, log.write_bytes, (whole,))
    finisher.start()
    out = tmp_path / "snap.json"
    started = time.monotonic()
    try:
        assert main(["snapshot", str(log), "-f", "json", "-o", str(out)]) == EXIT_OK
    finally:
        finisher.join()
    assert time.monotonic() - started < 2.0
    assert json.loads(out.read_text())["runs"][0]["iter"] == 40


def test_a_document_still_half_written_says_so(tmp_path: Path) -> None:
    log = tmp_path / "run_w.json"
    whole = _seed_document(50)
    log.write_bytes(whole[: len(whole) // 2])
    result = run_cli("snapshot", str(log))
    assert_one_line(result, EXIT_NO_RUNS, "being written, try again")
    assert "no training runs found" not in result.stderr
