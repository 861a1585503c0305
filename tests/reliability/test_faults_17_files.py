"""Issue 17, files that are not what the code pictured: devices, FIFOs,
links, modes and owners, a signal mid-write, a config that never ends.

Every test here uses real special files (``mknod``, ``mkfifo``, symlinks,
hard links), real processes and real signals.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainwatch.cli import EXIT_OK, EXIT_USAGE, main
from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.ingest.watcher import Watcher

from .faults17 import append, env, lines, run_cli, wait_for, write_log


def one_line(result: subprocess.CompletedProcess[bytes], status: int, says: str = "") -> None:
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == status, (result.returncode, err)
    assert "Traceback" not in err and err.count("\n") == 1 and says in err, err


@pytest.fixture
def run_log(tmp_path: Path) -> Path:
    return write_log(tmp_path / "runs" / "train.log")


# ----------------------------------------------------------- finding 1


def test_output_onto_a_device_writes_into_it(tmp_path: Path, run_log: Path) -> None:
    """Finding 1: ``-o`` onto a character device replaced the device node
    with a regular 0600 file (as root, ``-o /dev/null``).

    Class: an output path that is not a regular file is replaced by a rename.
    Other instances found and fixed: a FIFO (now written into while a reader
    reads, an error at once when none does, never a hang), a link to
    ``/proc/self/fd/1`` or ``/dev/stdout`` (written into: what it points at is
    the process's stdout), a folder (an error, as before).
    """
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("this container may not make device nodes")
    assert main(["snapshot", str(run_log), "-f", "json", "-o", str(null)]) == EXIT_OK
    assert stat.S_ISCHR(os.stat(null).st_mode) and os.stat(null).st_rdev == os.makedev(1, 3)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_output_onto_a_fifo_and_fd_links(tmp_path: Path, run_log: Path) -> None:
    """Finding 1's other instances: a FIFO with a reader gets the text and
    stays a FIFO; one without a reader is one line of error at once, not a
    hang; ``-o /proc/self/fd/1`` (and a symlink to it) prints on stdout and
    the link stays a link."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    time.sleep(0.1)  # (the reader is waiting in open())
    result = run_cli("snapshot", str(run_log), "-f", "json", "-o", str(fifo), timeout=30)
    reader.join(10)
    assert result.returncode == EXIT_OK, result.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and b'"iter": 20' in got[0]

    started = time.monotonic()
    one_line(run_cli("snapshot", str(run_log), "-o", str(fifo), timeout=30), EXIT_USAGE, "no process is reading it")
    assert time.monotonic() - started < 20

    link = tmp_path / "to-stdout"
    link.symlink_to("/proc/self/fd/1")
    for target in ("/proc/self/fd/1", "/dev/stdout", str(link)):
        result = run_cli("snapshot", str(run_log), "-f", "json", "-o", target)
        assert result.returncode == EXIT_OK and b'"iter": 20' in result.stdout, (target, result.stderr)
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"


# ---------------------------------------------------------- finding 12


def test_exports_keep_umask_mode_owner_and_links(tmp_path: Path, run_log: Path) -> None:
    """Finding 12: every export was mode 0600 (umask ignored), an existing
    file lost its mode and owner, and a symlinked report was replaced by a
    plain file.

    Class: the atomic rename writes a file the user did not describe. Other
    instances found and fixed: a file with other hard links (now rewritten in
    place: a rename cut it off from them), a dangling symlink (its target is
    made, as a shell's > does), a folder we may not add to but a file we may
    write (written in place). The app's export key writes through the same
    ``write_atomic``.
    """
    new = tmp_path / "new.json"
    old_mask = os.umask(0o027)
    try:
        assert main(["snapshot", str(run_log), "-f", "json", "-o", str(new)]) == EXIT_OK
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o640

    kept = tmp_path / "kept.json"
    kept.write_text("old")
    os.chmod(kept, 0o604)
    if os.geteuid() == 0:
        os.chown(kept, 1234, 5678)
    before = kept.stat()
    assert main(["snapshot", str(run_log), "-f", "json", "-o", str(kept)]) == EXIT_OK
    after = kept.stat()
    assert stat.S_IMODE(after.st_mode) == 0o604 and (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert '"iter": 20' in kept.read_text()

    real = tmp_path / "reports" / "latest.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "report.json"
    link.symlink_to(real)
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "reports" / "made.json")
    twin = tmp_path / "twin.json"
    os.link(real, twin)
    for out in (link, dangling):
        assert main(["snapshot", str(run_log), "-f", "json", "-o", str(out)]) == EXIT_OK
        assert out.is_symlink()
    assert '"iter": 20' in real.read_text() and '"iter": 20' in (tmp_path / "reports" / "made.json").read_text()
    append(run_log, lines(21, 21))
    assert main(["snapshot", str(run_log), "-f", "json", "-o", str(twin)]) == EXIT_OK
    assert '"iter": 21' in real.read_text() and real.stat().st_ino == twin.stat().st_ino


_HOOKED_WRITE = """
import os, signal, sys
from pathlib import Path
from trainwatch.outputs import writing
real = os.fsync
def fsync(fd):  # the signal arrives mid-write, the temporary file beside the target
    os.kill(os.getpid(), signal.{sig})
    real(fd)
os.fsync = fsync
writing.write_atomic(Path(sys.argv[1]), "new")
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_signal_mid_write_leaves_no_temporary_file(tmp_path: Path, sig: str) -> None:
    """Finding 12: SIGTERM during ``-o`` left ``.out.json.XXXX.tmp`` behind.
    A real signal, sent by the writing process to itself while its temporary
    file exists; it must still die of that signal (a shell sees 128+n).
    Other instance: SIGHUP (the terminal closed)."""
    target = tmp_path / "out.json"
    target.write_text("old")
    code = _HOOKED_WRITE.format(sig=sig)
    result = subprocess.run([sys.executable, "-c", code, str(target)], env=env(), capture_output=True, timeout=30)
    assert result.returncode == -getattr(signal, sig), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    assert target.read_text() == "old"


def test_exports_never_land_in_the_watched_tree(tmp_path: Path) -> None:
    """Finding 19: with HOME watched (``trainwatch ~`` from ~), exports went to
    ``~/trainwatch-exports``, inside the watched tree, where the watcher
    read its own .csv and .json as logs.

    Other instance found and fixed: an export written into a watched folder
    anyway (``--export-dir``) is never taken for a log (``is_log_name``)."""
    from trainwatch.ingest.discover import discover
    from trainwatch.tui.app import default_export_dir

    home = tmp_path / "home"
    write_log(home / "runs" / "a" / "train.log")
    folder = default_export_dir([home], home, home)
    assert home not in folder.parents or any(p.startswith(".") for p in folder.relative_to(home).parts)
    assert default_export_dir([home / "runs"], home, home) == home  # the cwd is not watched: as before
    assert main(["snapshot", str(home / "runs")]) == EXIT_OK
    from trainwatch.core.rows import Snapshot
    from trainwatch.outputs.export import export

    export(Snapshot(__import__("datetime").datetime(2025, 1, 1), ()), home / "runs")
    assert [p.name for p in discover([home / "runs"])[0]] == ["train.log"]


# ----------------------------------------------------------- finding 2


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    made: list[Watcher] = []
    yield made
    for watcher in made:
        watcher.stop()


def test_a_fifo_named_like_a_rotated_copy_blocks_nothing(tmp_path: Path, watchers: list[Watcher]) -> None:
    """Finding 2: a FIFO named ``train.log.1`` beside a shown ``train.log``
    was opened to compare it with the log (a rotated copy?) and blocked the
    watcher thread for good: every run froze.

    Class: ``open()`` of a path that may not be a regular file. Other
    instances found and fixed: the log itself replaced by a FIFO between the
    stat and the open (now one open without blocking, then fstat), a sidecar
    (``hparams.yaml``) that is a FIFO, the config file (``--config FIFO``,
    ``/dev/zero``), and a document replaced by a FIFO on a remote host
    (remote.sh read it with tail). Every file is opened through
    ``ingest.files.open_regular``.
    """
    log = write_log(tmp_path / "run" / "train.log")
    snapshots: list[object] = []
    watcher = Watcher([tmp_path], RunOptions(), Names(), snapshots.append)
    watchers.append(watcher)
    watcher.start()

    def iteration() -> int | None:
        last = snapshots[-1] if snapshots else None
        rows = getattr(last, "rows", ())
        return rows[0].stats.iter if rows else None

    wait_for(lambda: iteration() == 20, 20, "the first read")
    fifo = tmp_path / "run" / "train.log.1"
    os.mkfifo(fifo)
    time.sleep(0.3)
    append(log, lines(21, 30))
    try:
        wait_for(lambda: iteration() == 30, 10, "an update after the FIFO appeared")
    finally:
        _unblock(fifo)


def _unblock(fifo: Path) -> None:
    """Open the FIFO for writing once, so that a reader stuck in open() goes on (a failed test must not hang)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # no reader waits: nothing stuck
    os.close(fd)


def test_config_and_sidecar_that_never_end(tmp_path: Path, run_log: Path) -> None:
    """Finding 19 (and 2's class): ``--config /dev/zero`` or a FIFO hung the
    CLI; a sidecar that is a FIFO is skipped, not waited on."""
    fifo = tmp_path / "names.toml"
    os.mkfifo(fifo)
    for config in (str(fifo), "/dev/zero"):
        one_line(run_cli("snapshot", str(run_log), "--config", config, timeout=30), EXIT_USAGE, "not a regular file")
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (2 << 20))
    one_line(run_cli("snapshot", str(run_log), "--config", str(big)), EXIT_USAGE, "larger than")

    lightning = tmp_path / "lightning" / "version_0"
    lightning.mkdir(parents=True)
    (lightning / "metrics.csv").write_text("epoch,step,train_loss\n" + "".join(f"0,{i},2.5\n" for i in range(1, 30)))
    os.mkfifo(lightning / "hparams.yaml")
    result = run_cli("snapshot", str(lightning), "-f", "json", timeout=30)
    assert result.returncode == EXIT_OK and b'"format": "lightning_csv"' in result.stdout, result.stderr


# ---------------------------------------------------------- finding 19


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[runs.a]\nname = 5\n", "name must be text"),
        ('[run.a]\nname = "A"\n', "unknown key 'run'"),
        ('[runs.a]\nnmae = "A"\n', "unknown key 'nmae'"),
        ('[runs]\na = "A"\n', "must be a table"),
    ],
)
def test_config_typos_are_errors(tmp_path: Path, run_log: Path, text: str, says: str) -> None:
    """Finding 19: config typos were silently ignored (``name = 5``,
    ``[run.x]``): the user saw no names and no reason. Other instances found
    and fixed: a misspelt key inside a run's table, a run that is not a
    table, ``$TRAINWATCH_CONFIG`` naming a file that is not there."""
    config = tmp_path / "names.toml"
    config.write_text(text)
    one_line(run_cli("snapshot", str(run_log), "--config", str(config)), EXIT_USAGE, says)


def test_every_key_a_config_may_hold_is_read_not_refused(tmp_path: Path, run_log: Path) -> None:
    """The other side of finding 19's strictness: each top-level key trainwatch
    reads (names, JSON-lines keys, groups, alert destinations) is accepted."""
    config = tmp_path / "all.toml"
    config.write_text(
        'notify = ["json://127.0.0.1:9/hook"]\n[runs.train]\nname = "A"\n[jsonl]\nstep = "s"\n'
        '[[group]]\npaths = ["/nowhere/*/"]\n[[split]]\npaths = ["/nowhere/x"]\n'
    )
    result = run_cli("snapshot", str(run_log), "--config", str(config))
    assert result.returncode == EXIT_OK, result.stderr


def test_a_config_named_in_the_environment_must_exist(tmp_path: Path, run_log: Path) -> None:
    missing = tmp_path / "nope.toml"
    one_line(run_cli("snapshot", str(run_log), TRAINWATCH_CONFIG=str(missing)), EXIT_USAGE, "cannot read config")
