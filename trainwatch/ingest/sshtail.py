"""Tail files on another host over the system ``ssh``: the transport of ``remote``.

trainwatch runs the real ``ssh`` binary (so the user's keys, ``~/.ssh/config``
and jump hosts just work) with ``BatchMode=yes`` and sends it ``remote.sh``, a
POSIX shell script run by ``sh -s``: nothing is installed on the host. The
script lists the log files under the roots and streams the bytes they append,
framed (``read_frames``), polling with ``sleep``; a quiet poll costs one
``stat``. Documents (``*.json``) come whole when they change.

``HostLink`` is one ssh process per host. When it ends, the link reconnects
with exponential backoff and jitter and resumes each file from the offset
already received: a re-sent prefix would look like a restart to the
aggregator, so nothing is sent twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import queue
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from trainwatch.ingest.discover import LOG_SUFFIXES
from trainwatch.parsers import SIDECAR_SUFFIXES

SSH = "ssh"
#: Extra ssh arguments for every host, split like a shell would.
ENV_OPTIONS = "TRAINWATCH_SSH_OPTS"
#: Largest chunk of a file in one frame; a big log arrives in several.
CAP = 4 << 20
#: Seconds between two searches for new files on a host (a stat poll runs every interval).
RESCAN = 10.0
#: Files per ``stat`` command on the host: command lines are bounded.
STAT_BATCH = 500
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
#: Frames waiting for the worker (at most CAP bytes each): beyond, ssh is not read.
QUEUE_FRAMES = 16
_MAGIC = b"@@trainwatch "
_SCRIPT = Path(__file__).with_name("remote.sh")

# ------------------------------------------------------------------ protocol


@dataclass(frozen=True, slots=True)
class Tail:
    """Bytes ``[offset, offset + len(data))`` of a tailed file."""

    name: str
    identity: str
    offset: int
    data: bytes
    mtime: float


@dataclass(frozen=True, slots=True)
class Document:
    """The whole text of a document (``*.json``) as of ``stamp``."""

    name: str
    identity: str
    size: int
    mtime_text: str  # as the host wrote it: resuming compares it as text
    data: bytes

    @property
    def stamp(self) -> tuple[str, int, str]:
        return (self.identity, self.size, self.mtime_text)

    @property
    def mtime(self) -> float:
        return float(self.mtime_text)


@dataclass(frozen=True, slots=True)
class Gone:
    """The file cannot be found any more."""

    name: str


@dataclass(frozen=True, slots=True)
class Control:
    """``hello``, ``synced``, ``beat``, ``ok``, ``problem``, ``fatal``: ``args`` are the rest of the line."""

    kind: str
    args: str = ""


Frame = Tail | Document | Gone | Control


class ProtocolError(Exception):
    """The stream from the host is not what remote.sh writes."""


def read_frames(stream: IO[bytes]) -> Iterator[Frame]:
    """Frames from the script's output until it ends. Lines before ``hello``
    (a login shell's own prints) are skipped; a cut-off last frame is dropped."""
    started = False
    while line := stream.readline(65536):
        if not line.startswith(_MAGIC) or not line.endswith(b"\n"):
            if started:
                raise ProtocolError(f"unexpected output: {line[:80]!r}")
            continue
        kind, _, rest = line[len(_MAGIC) : -1].decode("utf-8", "surrogateescape").partition(" ")
        started = True
        try:
            if kind == "tail":
                identity, offset_text, length_text, mtime, name = rest.split(" ", 4)
                offset, length, when = int(offset_text), int(length_text), float(mtime)
                data = stream.read(length)
                if len(data) < length:
                    return
                yield Tail(name, identity, offset, data, when)
            elif kind == "doc":
                identity, size_text, mtime, name = rest.split(" ", 3)
                size, _ = int(size_text), float(mtime)  # numbers; the time is kept as written
                data = stream.read(size)
                if len(data) < size:
                    return
                yield Document(name, identity, size, mtime, data)
            elif kind == "gone":
                yield Gone(rest)
            else:
                yield Control(kind, rest)
        except ValueError:
            raise ProtocolError(f"malformed frame: {line[:80]!r}") from None


@functools.cache
def _body() -> str:
    """remote.sh with the log suffixes and sidecar names filled in: the same for every connection."""
    known = "|".join(
        "." + "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in s[1:]) for s in sorted(LOG_SUFFIXES)
    )
    find = " -o ".join([*(f"-name '*{p}'" for p in known.split("|")), "! -name '*.*'", "-name '*.[0-9]*'"])
    # Names never contain "/" nor are empty: the fallbacks match nothing.
    sidecars = " -o ".join(f"-name {shlex.quote('*' + s)}" for s in SIDECAR_SUFFIXES) or "-name ''"
    sidecar_case = " | ".join("*" + shlex.quote(s) for s in SIDECAR_SUFFIXES) or "''"
    body = _SCRIPT.read_text(encoding="utf-8").replace("@KNOWN@", known).replace("@FIND@", find)
    return body.replace("@SIDECARS@", sidecars).replace("@SIDECAR_CASE@", sidecar_case)


def script(roots: Sequence[str], *, interval: float, once: bool, resume: Iterable[str] = ()) -> bytes:
    """The text ``sh -s`` runs on the host: parameters, then remote.sh."""
    header = (
        f"set -- {' '.join(shlex.quote(r) for r in roots)}\n"
        f"interval={interval:g} once={int(once)} cap={CAP} batch={STAT_BATCH}"
        f" rescan={max(1, round(RESCAN / max(interval, 0.1)))}\n"
        f"tw_resume={shlex.quote(chr(10).join(resume))}\n"
    )
    return (header + _body()).encode("utf-8", "surrogateescape")


def ssh_command(target: str, options: Sequence[str] = ()) -> list[str]:
    """The ssh invocation: the user's options first (the first value of an option wins)."""
    return [
        SSH,
        *options,
        "-T",
        *("-o", "BatchMode=yes", "-o", "ConnectTimeout=15"),
        *("-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"),
        "--",
        target,
        "sh -s",
    ]


def env_options() -> list[str]:
    return shlex.split(os.environ.get(ENV_OPTIONS, ""))


# -------------------------------------------------------------- connection


class HostLink:
    """One ssh process to one host for all of its roots (``paths``), reconnecting with backoff.

    Its thread reads frames into ``frames`` (for the worker) and keeps, per
    file, what has been received, which is where a new connection resumes.
    """

    def __init__(
        self,
        target: str,
        paths: Sequence[str],
        wake: Callable[[], None],
        *,
        interval: float,
        ssh_options: Sequence[str] = (),
        once: bool = False,
    ) -> None:
        self.target = target
        self.paths = list(paths)  # the roots, as typed (absolute or ~/…)
        self.frames: queue.Queue[Tail | Document | Gone] = queue.Queue(QUEUE_FRAMES)
        self.error: str | None = None  # why the host cannot be read now
        self.down_since: datetime | None = None
        self.synced = False  # a first full pass arrived
        self.root_problems: dict[int, str] = {}  # index in paths -> problem
        self.version = 0  # bumped whenever the above change
        self.attempts = 0
        self._hello_at: float | None = None
        self._wake = wake
        self._interval = interval
        self._options = list(ssh_options)
        self._once = once
        self._received: dict[str, tuple[int, str, str, str]] = {}  # name -> resume line fields
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._proc_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None or self._stop.is_set():
            return
        self._thread = threading.Thread(target=self._run, name=f"trainwatch-ssh-{self.target}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kill()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._hello_at = None
            error = self._session()
            if self._stop.is_set() or (self._once and error is None):
                return
            if self._hello_at is not None and time.monotonic() - self._hello_at > 10:
                self.attempts = 0  # it was up a good while: the first retry comes soon
            self._set(error=error or "connection closed")
            if self._once:
                return
            delay = backoff(self.attempts)
            self.attempts += 1
            self._stop.wait(delay)

    def _session(self) -> str | None:
        """One connection until it ends; why it ended."""
        resume = [f"{o} {i} {s} {m} {name}" for name, (o, i, s, m) in self._received.items()]
        text = script(self.paths, interval=self._interval, once=self._once, resume=resume)
        try:
            proc = subprocess.Popen(
                ssh_command(self.target, self._options),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C in the terminal is ours to handle
                # ... and so, out of the terminal's reach, it must die with us
                # (SIGTERM, SIGHUP, SIGKILL: whatever ends trainwatch).
                preexec_fn=_die_with_parent(),
            )
        except OSError as exc:
            return f"cannot run {SSH}: {exc.strerror or exc}"
        with self._proc_lock:
            self._proc = proc
        if self._stop.is_set():
            self._kill()
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        errors: deque[str] = deque(maxlen=8)
        drain = threading.Thread(target=_drain, args=(proc.stderr, errors), daemon=True)
        drain.start()
        try:
            with contextlib.suppress(OSError):
                proc.stdin.write(text)
                proc.stdin.close()
            fatal = self._read(proc.stdout)
        except ProtocolError as exc:
            fatal = str(exc)
        finally:
            self._kill()
            drain.join(timeout=5)
            proc.stdout.close()
            proc.stderr.close()
        if fatal:
            return fatal
        if self._once and self.synced:
            return None  # it read everything once, as asked
        reason = next((e for e in reversed(errors) if not e.startswith("Warning: Permanently added")), "")
        return reason or f"ssh exited with status {proc.returncode}"

    def _read(self, stdout: IO[bytes]) -> str | None:
        for frame in read_frames(stdout):
            if isinstance(frame, Control):
                if frame.kind == "fatal":
                    return frame.args
                self._control(frame)
                continue
            if isinstance(frame, Tail):
                self._received[frame.name] = (frame.offset + len(frame.data), frame.identity, "-", "-")
            elif isinstance(frame, Document):
                self._received[frame.name] = (0, frame.identity, str(frame.size), frame.mtime_text)
            while not self._stop.is_set():
                with contextlib.suppress(queue.Full):
                    self.frames.put(frame, timeout=0.5)
                    break
            self._wake()
        return None

    def _control(self, frame: Control) -> None:
        if frame.kind == "hello":
            self._hello_at = time.monotonic()
            self._set(error=None)
        elif frame.kind == "synced" and not self.synced:
            self.synced = True
            self._set(error=None)
        elif frame.kind in ("ok", "problem"):
            index, _, text = frame.args.partition(" ")
            with contextlib.suppress(ValueError):
                if frame.kind == "ok":
                    self.root_problems.pop(int(index) - 1, None)
                else:
                    self.root_problems[int(index) - 1] = text
                self._set(error=None)

    def _set(self, error: str | None) -> None:
        if error is not None and self.error is None:
            self.down_since = datetime.now()
        self.error = error
        self.version += 1
        self._wake()

    def _kill(self) -> None:
        with self._proc_lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            # Its own session (start_new_session): the group is ssh and whatever it started.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _die_with_parent() -> Callable[[], None] | None:
    """What the ssh child runs before ``exec`` so that the kernel sends it
    SIGTERM when the thread that started it ends, with the process or not
    (Linux's ``PR_SET_PDEATHSIG``; kept across ``exec``): a SIGKILL, or a
    SIGTERM or SIGHUP the app does not catch, no longer leaves ssh running.
    ``None`` elsewhere: there ``stop`` alone ends it. It makes system calls
    only (prctl looked up beforehand), so it is safe between ``fork`` and
    ``exec`` in a process with threads."""
    if _prctl is None:
        return None
    parent = os.getpid()
    prctl = _prctl

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the call: too late for the kernel to tell
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


_PR_SET_PDEATHSIG = 1


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_prctl = _libc_prctl()


def backoff(attempts: int) -> float:
    """Seconds before reconnection attempt ``attempts + 1``: 1, 2, 4 … 60, each
    with up to half of it taken off at random, so that many watchers of one
    host that went down do not all come back at the same instant."""
    base = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(attempts, 16))
    return base / 2 + random.uniform(0, base / 2)


def _drain(stream: IO[bytes], lines: deque[str]) -> None:
    for raw in stream:
        line = raw.decode("utf-8", "replace").strip()
        if line:
            lines.append(line)
