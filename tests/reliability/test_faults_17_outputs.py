"""Issue 17, what trainwatch hands out: /metrics under file names that are
not UTF-8 and under a crowd of scrapers, ssh children that outlive us,
legacy locales, numbers too big for a float, text that turns itself around,
and a folder of 50,000 files that hold no run.

Real processes and signals, a real HTTP endpoint on loopback, and for ssh a
real process in its own session (``ssh`` on the PATH is a script that runs
``sh -s`` here, as tests/test_remote.py does).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from trainwatch.cli import EXIT_OK, EXIT_USAGE, main
from trainwatch.core.names import Names
from trainwatch.ingest.publish import build
from trainwatch.ingest.source import LogSource
from trainwatch.outputs.prometheus import MetricsServer

from . import helpers
from .faults17 import alive, descendants, env, free_port, run_cli, scrape, start_cli, stop, wait_for, write_log

# ----------------------------------------------------------- finding 3


def test_a_file_name_that_is_not_utf8_is_served_and_drawn(tmp_path: Path) -> None:
    """Finding 3: one log whose file name holds a byte that is not UTF-8 made
    every /metrics scrape a 500 (a traceback on stderr each time), and the
    app drew the name as ``r\\udce9sum\\udce9``, wider than measured.

    Class: an undecodable file name (surrogates) reaching a sink that must
    be valid Unicode. Other instances found and fixed: every label (run,
    run_id, path), a lone surrogate a JSON log spells (``"\\ud800"``), and
    every text a person sees (``safe_text``: the app's cells, notifications,
    the table, md, html, csv, stderr), which draws each such byte as one
    U+FFFD, one cell wide as measured. JSON keeps U+FFFD as before.
    """
    folder = os.fsencode(tmp_path)
    with open(os.path.join(folder, b"r\xe9sum\xe9.log"), "w") as handle:
        handle.write("iter 1: loss 2.0, time 100.00ms, mfu 10.00%\niter 2: loss 1.9, time 100.00ms, mfu 10.00%\n")
    sources = [LogSource(Path(os.fsdecode(os.path.join(folder, b"r\xe9sum\xe9.log"))))]
    sources[0].refresh()
    snapshot = build(sources, Names(), helpers.NOW)
    server = MetricsServer(port=0)
    server.start()
    try:
        server.publish(snapshot)
        status, body = scrape(server.port)
    finally:
        server.stop()
    assert status == 200 and 'run="r\ufffdsum\ufffd"' in body

    from trainwatch.tui import cells

    cell = cells.name_cell(snapshot.rows[0].name, 20, "")
    assert cell.plain == "r\ufffdsum\ufffd" and cell.cell_len == 6


# ---------------------------------------------------------- finding 17


def test_a_crowd_of_scrapers_is_answered(tmp_path: Path) -> None:
    """Finding 17: the endpoint's listen backlog was 5 (prometheus_client's
    default): 50 scrapes at once took up to 7.7 s, 200 up to 28.7 s, one went
    unanswered for 60 s (SYN retries). Other instance found and fixed: a
    client that connects and says nothing held a thread for ever (now 30 s)."""
    log = write_log(tmp_path / "train.log")
    source = LogSource(log)
    source.refresh()
    server = MetricsServer(port=0)
    server.start()
    server.publish(build([source], Names(), helpers.NOW))
    crowd = helpers.scale(200, 1000)
    barrier = threading.Barrier(crowd)
    took: list[float] = []
    failed: list[BaseException] = []

    def scraper() -> None:
        barrier.wait()
        started = time.monotonic()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=30) as response:
                assert response.status == 200 and b"trainwatch_iteration" in response.read()
        except BaseException as exc:
            failed.append(exc)
        took.append(time.monotonic() - started)

    threads = [threading.Thread(target=scraper) for _ in range(crowd)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        server.stop()
    assert not failed, failed[:3]
    assert max(took) < 5.0, f"slowest of {crowd} scrapes: {max(took):.1f}s"


# ---------------------------------------------------------- finding 14


@pytest.fixture
def fake_ssh(tmp_path: Path) -> dict[str, str]:
    """``ssh`` on the PATH: a script that runs the remote script here (the host is this machine)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"
    ssh.write_text("#!/bin/sh\nexec sh -s\n")
    ssh.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TRAINWATCH_SSH_OPTS": ""}


@pytest.mark.parametrize(
    ("command", "sig"),
    [("serve-metrics", "SIGTERM"), ("serve-metrics", "SIGHUP"), ("serve-metrics", "SIGKILL"), ("watch", "SIGTERM")],
)
def test_ssh_dies_with_trainwatch(tmp_path: Path, fake_ssh: dict[str, str], command: str, sig: str) -> None:
    """Finding 14: ssh runs in its own session (a Ctrl-C in the terminal is
    trainwatch's to handle), so it survived a SIGTERM or SIGHUP of the app
    and of ``serve-metrics`` for up to ``--poll-network`` seconds. Now the
    kernel ends it when trainwatch ends, however (``PR_SET_PDEATHSIG``), and
    ``serve-metrics`` stops cleanly on SIGHUP as on SIGTERM. Other instance:
    SIGKILL, which no handler sees. The app runs on a real pseudo-terminal."""
    remote = tmp_path / "remote"
    write_log(remote / "run" / "train.log")
    spec = f"localhost:{remote}"
    if command == "serve-metrics":
        port = free_port()
        proc = start_cli(command, spec, "--metrics-port", str(port), "--poll-network", "30", **fake_ssh)
    else:
        primary, secondary = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "trainwatch", spec, "--poll-network", "30"],
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            env=env(**fake_ssh, TERM="xterm-256color"),
            start_new_session=True,
        )
        os.close(secondary)
        threading.Thread(target=_drain, args=(primary,), daemon=True).start()
    started: list[int] = []
    try:
        wait_for(lambda: any(_command(pid) == "sh" for pid in _children(proc.pid)), 30, "ssh to start")
        time.sleep(0.5)
        started = descendants(proc.pid)  # ssh, and what it runs (sleep...): ours to clean up
        ssh = _children(proc.pid)
        proc.send_signal(getattr(signal, sig))
        proc.wait(15)
        wait_for(lambda: not any(alive(pid) for pid in ssh), 5, "ssh to end")
    finally:
        stop(proc)
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    return [child for child in descendants(pid) if _parent(child) == pid]


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _drain(fd: int) -> None:
    """Read what the app draws, so that it never blocks on a full terminal."""
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass
    os.close(fd)


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _body(port: int) -> bytes:
    try:
        return scrape(port, 2)[1].encode()
    except OSError:
        return b""


# ---------------------------------------------------------- finding 15


@pytest.fixture
def legacy_runs(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "runs"
    write_log(folder / "crème" / "train.log")
    write_log(folder / "done" / "train.log", 0, 1000)  # finished: ✓
    config = tmp_path / "names.toml"
    config.write_text('[runs.train]\nname = "modèle — ✓ 模型"\n')
    return folder, config


@pytest.mark.parametrize("encoding", ["iso-8859-1", "ascii"])
def test_legacy_locales(
    legacy_runs: tuple[Path, Path], encoding: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Finding 15: under an ISO-8859-1 locale or ``PYTHONIOENCODING=ascii``,
    ``snapshot`` in table, md and html crashed with a traceback (✓ — ●).

    Class: text written to a stream in an encoding that cannot carry it.
    Other instances found and fixed: csv and json (a run name that is not
    ASCII crashed them too), ``--help`` and the stdout messages of every
    command (an error handler on stdout: never a traceback), and ``--ascii``
    to ask for ASCII on any terminal. Glyphs become ASCII (one cell each:
    columns stay aligned), html uses character references, json ``\\u``
    escapes. The table as a real process (Rich writes it to the terminal);
    the other formats through a stdout in that encoding, in process.
    """
    folder, config = legacy_runs
    result = run_cli("snapshot", str(folder), "--config", str(config), PYTHONIOENCODING=encoding)
    assert result.returncode == EXIT_OK and b"Traceback" not in result.stderr, result.stderr
    table = result.stdout.decode(encoding)  # it is that encoding, all of it
    assert "+ finished" in table and "* running" in table
    for command in (["--help"], ["snapshot", "--help"]):
        helped = run_cli(*command, PYTHONIOENCODING=encoding)
        assert helped.returncode == 0 and b"Traceback" not in helped.stderr

    for kind in ("md", "html", "csv", "json"):
        out = io.BytesIO()
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, encoding=encoding, errors="strict"))
        assert main(["snapshot", str(folder), "-f", kind, "--config", str(config)]) == EXIT_OK, kind
        sys.stdout.flush()
        text = out.getvalue().decode(encoding)
        if kind == "json":
            names = {r["run"] for r in json.loads(text)["runs"]}
            assert names == {"modèle — ✓ 模型 · crème", "modèle — ✓ 模型 · done"}
        if kind == "html":
            assert "&#27169;&#22411;" in text  # 模型, as the browser will show it
    assert "Traceback" not in capfd.readouterr().err


def test_ascii_option(tmp_path: Path) -> None:
    """``--ascii`` on a UTF-8 terminal, and into a file: pure ASCII."""
    write_log(tmp_path / "runs" / "a" / "train.log", 0, 1000)
    result = run_cli("snapshot", str(tmp_path / "runs"), "--ascii")
    assert result.returncode == EXIT_OK and result.stdout.isascii() and b"+ finished" in result.stdout
    out = tmp_path / "out.md"
    assert main(["snapshot", str(tmp_path / "runs"), "-f", "md", "--ascii", "-o", str(out)]) == EXIT_OK
    assert out.read_bytes().isascii()


# ---------------------------------------------------------- finding 16


@pytest.mark.parametrize(
    "args",
    [
        ["--tokens-per-iter", "9" * 400],
        ["--params", "9" * 400],
        ["--tokens-per-iter", str(2**53 + 1)],
    ],
)
def test_numbers_beyond_a_float(tmp_path: Path, args: list[str]) -> None:
    """Finding 16: ``--tokens-per-iter`` or ``--params`` with 400 digits was an
    OverflowError traceback (a figure turned into a float). Other instances
    found and fixed: ``--poll``, ``--poll-network``, ``--speed`` and
    ``--duration`` of 1e308 (a timeout that overflows the clock's type): each
    is a usage error with its range now."""
    log = write_log(tmp_path / "train.log")
    result = run_cli("snapshot", str(log), *args)
    err = result.stderr.decode()
    assert result.returncode == EXIT_USAGE and "Traceback" not in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "args",
    [
        ["serve-metrics", ".", "--poll", "1e308"],
        ["serve-metrics", ".", "--poll-network", "1e308"],
        ["demo", "--headless", "--duration", "1e308"],
        ["demo", "--headless", "--speed", "1e308"],
    ],
)
def test_times_beyond_a_clock(args: list[str]) -> None:
    result = run_cli(*args, timeout=30)
    err = result.stderr.decode()
    assert result.returncode == EXIT_USAGE and "Traceback" not in err and err.count("\n") == 1, err


# ---------------------------------------------------------- finding 19


def test_bidi_overrides_are_neutralised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 19: U+202E (right-to-left override) in a run's name turned the
    rest of its table row around. Other instances found and fixed: the other
    bidirectional controls (U+202A-U+202D, U+2066-U+2069, U+200E/F, U+061C),
    wherever a person reads log text (``safe_text``: the app, table, md,
    html, csv, stderr). JSON keeps the true name, escaped."""
    log = write_log(tmp_path / "runs" / "a" / "train.log")
    config = tmp_path / "names.toml"
    config.write_text('[runs.train]\nname = "gpt2\u202ecod.exe\u2066x\u2069"\n')
    for kind in ("table", "md", "html", "csv"):
        assert main(["snapshot", str(log), "-f", kind, "--config", str(config)]) == EXIT_OK
        text = capsys.readouterr().out
        assert "gpt2cod.exex" in text, (kind, text)
        assert not any(c in text for c in "\u202e\u2066\u2069"), kind
    assert main(["snapshot", str(log), "-f", "json", "--config", str(config)]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["runs"][0]["run"] == "gpt2\u202ecod.exe\u2066x\u2069"


def test_a_crowd_of_files_that_are_no_logs_is_summarised(tmp_path: Path) -> None:
    """Finding 19: 50,000 extensionless files that hold no run printed 50,000
    "unrecognised" lines on stderr. Other instances found and fixed: the
    same list under the terminal table, the problems before it (50,000
    FIFOs: "not a regular file" each), ``serve-metrics``' stderr and the
    app's notifications (one line counts the rest)."""
    folder = tmp_path / "runs"
    write_log(folder / "a" / "train.log")
    junk = folder / "junk"
    junk.mkdir()
    count = helpers.scale(2000, 50_000)
    for i in range(count):
        (junk / f"note{i}").write_text("nothing to see\n")
    for i in range(30):
        os.mkfifo(junk / f"pipe{i}.log")
    for kind in ("table", "md"):
        result = run_cli("snapshot", str(folder), "-f", kind, timeout=120)
        assert result.returncode == EXIT_OK
        assert len(result.stderr.splitlines()) <= 24, result.stderr[-500:]
        assert len(result.stdout.splitlines()) <= 20, result.stdout[-500:]
