"""The app in a real terminal (tmux): how it ends, pauses and draws.

Class of faults: the terminal's state outliving the app or being drawn
wrong, because the app was ended or started in a way nobody pictured.
Instances found and fixed: SIGTERM and SIGHUP killed the process in app mode
(alternate screen, mouse reporting, hidden cursor left on, so mouse moves
typed escape codes into the shell); SIGINT exited 0; Ctrl-C showed "press
ctrl+q"; Ctrl-Z did nothing, and after a SIGTSTP/``fg`` the screen stayed
blank; with ``2>err.log`` the app drew into the file and left the screen
blank; under an ASCII locale box characters were written as ``\\u256d``; at
80×24 the footer lost quit and 16 rows stayed blank.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from . import seedruns

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
ROOT = Path(__file__).resolve().parents[2]


class Terminal:
    """An interactive bash in a private tmux server, ``width`` × ``height``."""

    def __init__(self, width: int, height: int) -> None:
        self.socket = f"trainwatch-test-{os.getpid()}-{time.monotonic_ns()}"
        home = shlex.quote(str(Path.home()))
        env = f"env -i PATH=/usr/bin:/bin HOME={home} TERM=xterm-256color PS1='$ '"
        self.tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), f"{env} bash --norc -i")
        self.wait(lambda screen: "$" in screen, 10)

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=False)
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t")

    def type(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def flags(self) -> dict[str, str]:
        """Alternate screen, cursor visibility and every mouse mode, as tmux sees them."""
        names = ("alternate_on", "cursor_flag", "mouse_any_flag", "mouse_button_flag", "mouse_standard_flag")
        values = self.tmux("display", "-p", "-t", "t", " ".join(f"#{{{n}}}" for n in names)).split()
        return dict(zip(names, values, strict=True))

    def wait(self, seen: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = self.screen()
        while not seen(screen):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the screen was:\n{screen}")
            time.sleep(0.1)
            screen = self.screen()
        return screen

    def app_pid(self) -> int:
        shell = int(self.tmux("display", "-p", "-t", "t", "#{pane_pid}").strip())
        children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
        assert children, "the app is not running"
        return int(children[0])

    def close(self) -> None:
        socket = self.tmux("display-message", "-p", "#{socket_path}").strip()
        self.tmux("kill-server")
        if socket:
            Path(socket).unlink(missing_ok=True)


RESTORED = {"alternate_on": "0", "cursor_flag": "1", "mouse_any_flag": "0", "mouse_button_flag": "0"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    for run_id in seedruns.PLANS:
        (folder / f"{run_id}.json").write_bytes(orjson.dumps(seedruns.document(run_id, upto=1500)))
    return folder


@pytest.fixture
def terminal() -> Iterator[Callable[[int, int], Terminal]]:
    opened: list[Terminal] = []

    def make(width: int = 100, height: int = 30) -> Terminal:
        opened.append(Terminal(width, height))
        return opened[-1]

    yield make
    for term in opened:
        term.close()


def start(term: Terminal, runs: Path, prefix: str = "", redirect: str = "") -> None:
    command = f"cd {shlex.quote(str(ROOT))}; {prefix}{shlex.quote(sys.executable)} -m trainwatch {runs} {redirect}"
    # printf: the typed line must not contain what the output is matched on.
    term.type(f"{command}; printf 'st%s=%s\\n' atus $?", "Enter")
    term.wait(lambda screen: "Runs" in screen and "help" in screen)
    time.sleep(1.0)  # charts mount after the first frame


def exit_status(term: Terminal) -> int:
    screen = term.wait(lambda s: "status=" in s, 20)
    return int(screen.split("status=")[-1].split()[0])


def test_80x24_shows_quit_and_a_chart_and_ctrl_c_quits(terminal: Callable[[int, int], Terminal], runs: Path) -> None:
    term = terminal(80, 24)
    start(term, runs)
    lines = term.screen().splitlines()
    assert "q quit" in lines[-1] and "? help" in lines[-1]
    blank_run = longest = 0
    for line in lines:
        inside = line.strip("│ ╭╮╰╯─")
        blank_run = blank_run + 1 if not inside else 0
        longest = max(longest, blank_run)
    assert longest < 4, "\n".join(lines)  # the chart fills what the table leaves
    term.type("C-c")
    assert exit_status(term) == 130
    assert term.flags() == {**term.flags(), **RESTORED}


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_signals_restore_the_terminal(
    terminal: Callable[[int, int], Terminal], runs: Path, sig: signal.Signals, status: int
) -> None:
    term = terminal(100, 30)
    start(term, runs)
    assert term.flags()["alternate_on"] == "1" and term.flags()["mouse_any_flag"] == "1"
    os.kill(term.app_pid(), sig)
    assert exit_status(term) == status
    flags = term.flags()
    assert {k: flags[k] for k in RESTORED} == RESTORED


def test_ctrl_z_suspends_and_fg_redraws(terminal: Callable[[int, int], Terminal], runs: Path) -> None:
    term = terminal(100, 30)
    start(term, runs)
    term.type("C-z")
    term.wait(lambda screen: "Stopped" in screen, 10)
    assert term.flags()["alternate_on"] == "0" and term.flags()["cursor_flag"] == "1"
    term.type("fg", "Enter")
    screen = term.wait(lambda s: "Runs" in s and "? help" in s, 10)
    assert term.flags()["alternate_on"] == "1"
    assert sum(1 for line in screen.splitlines() if line.strip()) > 20, screen  # drawn, not blank
    term.type("q")
    term.wait(lambda s: term.flags()["alternate_on"] == "0", 10)


def test_stderr_to_a_file_and_an_ascii_locale(
    terminal: Callable[[int, int], Terminal], runs: Path, tmp_path: Path
) -> None:
    term = terminal(100, 30)
    err = tmp_path / "err.log"
    start(term, runs, prefix="PYTHONIOENCODING=ascii ", redirect=f"2>{err}")
    screen = term.screen()
    assert "Runs" in screen and "+-" in screen  # drawn on the terminal, with ASCII boxes
    assert "\\u25" not in screen and screen.isascii()
    term.type("q")
    assert exit_status(term) == 0
    assert err.stat().st_size < 200, err.read_text()  # not the frames (46 KB/s before)


def test_bad_input_is_explained_in_the_app_and_at_exit(terminal: Callable[[int, int], Terminal]) -> None:
    """``trainwatch /dev/null`` opened on "waiting for logs" and "loading…" forever, with no reason."""
    term = terminal(80, 24)
    command = f"cd {shlex.quote(str(ROOT))}; {shlex.quote(sys.executable)} -m trainwatch /dev/null"
    term.type(f"{command}; printf 'st%s=%s\\n' atus $?", "Enter")
    screen = term.wait(lambda s: "/dev/null is not a file or directory" in s and "? help" in s)
    assert "loading" not in screen
    term.type("q")
    assert exit_status(term) == 0
    assert "trainwatch: /dev/null is not a file or directory" in term.screen()
