"""Runs on other machines: ``[user@]host:/path`` roots, read over ssh.

``sshtail`` carries the bytes of each remote log file (one ssh connection
per host, nothing installed there); this module feeds them into the same
``LogSource`` as a local file's (``feed_bytes`` / ``replace_document``), so a
remote run is parsed and aggregated exactly like a local one. While a host
cannot be reached its runs keep their last figures with a ⚑, and a root from
which nothing was read yet shows as ``unrecognised`` with the reason.

Extra ssh options (a port, a key, ``-F config``) come from ``ssh_options`` or
the ``TRAINWATCH_SSH_OPTS`` environment variable.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from trainwatch.core.options import RunOptions
from trainwatch.ingest.source import SIDECAR_MAX, LogSource, SourceError
from trainwatch.ingest.sshtail import Document, Gone, HostLink, Tail, env_options
from trainwatch.parsers import SIDECAR_SUFFIXES
from trainwatch.parsers.wandb_files import is_own_file

# [user@]host:/path or host:~/path; a host never starts with "-" (it would be an ssh option).
_ROOT = re.compile(
    r"(?:(?P<user>[^\s@/:-][^\s@/:]*)@)?"  # user@, optional
    r"(?P<host>\[[0-9A-Fa-f:.%\w]+\]|[A-Za-z0-9_][\w.-]*)"  # host name, address or [IPv6]
    r":(?P<path>[/~].*)"
)


@dataclass(frozen=True, slots=True)
class RemoteRoot:
    """A folder or file on another host."""

    target: str  # what ssh is given: "host" or "user@host"
    path: str  # as typed: absolute, or "~/..." (expanded on the host)

    @property
    def host(self) -> str:
        return self.target.rpartition("@")[2].strip("[]")

    def __str__(self) -> str:
        return f"{self.target}:{self.path}"


def parse_root(text: str) -> RemoteRoot | None:
    """``[user@]host:/path`` (or ``host:~/path``) as a remote root, else ``None``."""
    match = _ROOT.fullmatch(text)
    if match is None:
        return None
    user, host = match["user"], match["host"]
    return RemoteRoot(f"{user}@{host}" if user else host, match["path"])


def split_roots(paths: Iterable[Path | str]) -> tuple[list[RemoteRoot], list[Path]]:
    """Remote roots and local paths; a local path that exists wins over the ``host:/path`` reading."""
    remote: list[RemoteRoot] = []
    local: list[Path] = []
    for path in paths:
        root = None if os.path.lexists(path) else parse_root(str(path))
        if root is None:
            local.append(Path(path))
        else:
            remote.append(root)
    return remote, local


def host_of(path: str) -> str | None:
    """The host of a remote run's path (``user@gpu1:/runs/x.log`` → ``gpu1``), ``None`` for a local one."""
    root = None if path.startswith("/") else parse_root(path)
    return root.host if root is not None else None


# ------------------------------------------------------------ worker side


class RemoteLogSource(LogSource):
    """A log file on another host: ``refresh`` applies the frames received for it."""

    def __init__(
        self,
        key: str,
        options: RunOptions,
        link: HostLink,
        sidecars: dict[str, str],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(Path(key), options, clock)
        self.key = key
        self.link = link
        self.pending: deque[Tail | Document | Gone] = deque()
        self._sidecars = sidecars  # key -> text, shared by the sources of a RemoteWatch
        self._gone = False
        self._down = False

    def _sidecar_text(self, name: str) -> str | None:
        # The host sends a folder's sidecars before its logs (remote.sh), so
        # one beside this log is here by the time the log is first read.
        return self._sidecars.get(str(self.path.with_name(name)))

    def refresh(self) -> bool:
        # (no ``budget``: what waits here is bounded by the link's queue of frames)
        changed = False
        while self.pending:
            # Taken before it is applied: a chunk that trips the parser is
            # skipped, as a local refresh skips it, and the next one follows on.
            frame = self.pending.popleft()
            self._gone = isinstance(frame, Gone)
            if isinstance(frame, Tail):
                changed |= self.feed_bytes(frame.data, frame.identity, frame.offset, frame.mtime)
            elif isinstance(frame, Document):
                changed |= self.replace_document(frame.data, frame.stamp, frame.mtime)
        link, was_down = self.link, self._down
        # The host's first full pass read: changes from now on are seen as they happen.
        self._caught_up = self._caught_up or link.synced
        self._down = link.error is not None
        if link.error is not None:
            since = link.down_since.strftime("%H:%M:%S") if link.down_since else "now"
            self.problem = f"host {link.target} unreachable since {since}: {link.error}"
        elif self._gone:
            self.problem = "deleted"
        elif was_down:
            self.problem = None
        return changed


class RemoteWatch:
    """Every remote root of a watcher: one ``HostLink`` per host, sources for the worker thread."""

    def __init__(
        self,
        roots: Sequence[RemoteRoot],
        options: RunOptions,
        wake: Callable[[], None],
        *,
        interval: float,
        ssh_options: Sequence[str] | None = None,
        once: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.roots = list(roots)
        self._clock = clock  # the watcher's: when a change was seen (``LogSource._observe``)
        self.options = options  # for files found from now on (the watcher updates the target)
        extra = env_options() if ssh_options is None else list(ssh_options)
        targets = dict.fromkeys(r.target for r in roots)
        # Each link with its roots, in the order of its ``paths``.
        self._hosts = [
            (HostLink(t, [r.path for r in mine], wake, interval=interval, ssh_options=extra, once=once), mine)
            for t in targets
            if (mine := [r for r in roots if r.target == t])
        ]
        self.links = [link for link, _ in self._hosts]
        self._sources: dict[str, RemoteLogSource] = {}
        self._sidecars: dict[str, str] = {}  # key -> text of a metadata file read with a log
        self._seen = {id(link): -1 for link in self.links}

    def start(self) -> None:
        for link in self.links:
            link.start()

    def stop(self) -> None:
        for link in self.links:
            link.stop()

    @property
    def running(self) -> bool:
        return any(link.running for link in self.links)

    def collect(self) -> tuple[dict[str, RemoteLogSource], bool]:
        """Worker thread: hand each received frame to its file's source.

        The sources with news (all of a host's when its state changed), and
        whether any host's state changed.
        """
        news: dict[str, RemoteLogSource] = {}
        changed = False
        for link in self.links:
            if link.version != self._seen[id(link)]:
                self._seen[id(link)] = link.version
                changed = True
                news.update((k, s) for k, s in self._sources.items() if s.link is link)
            while True:
                try:
                    frame = link.frames.get_nowait()
                except queue.Empty:
                    break
                key = f"{link.target}:{frame.name}"
                if frame.name.endswith(SIDECAR_SUFFIXES):
                    self._take_sidecar(key, frame)
                    continue
                if is_own_file(frame.name):
                    continue  # W&B's debug logs and saved files: no run (local discovery skips them too)
                source = self._sources.get(key)
                if source is None:
                    source = self._sources[key] = RemoteLogSource(key, self.options, link, self._sidecars, self._clock)
                source.pending.append(frame)
                news[key] = source
        return news, changed

    def _take_sidecar(self, key: str, frame: Tail | Document | Gone) -> None:
        """Keep a sidecar's text for the logs beside it (never a run of its own)."""
        if isinstance(frame, Document) and len(frame.data) <= SIDECAR_MAX:
            self._sidecars[key] = frame.data.decode("utf-8", errors="replace")
        else:
            self._sidecars.pop(key, None)

    def unrecognised(self) -> list[tuple[str, str]]:
        """Roots with nothing to show yet, and why (unreachable, missing, connecting)."""
        entries: list[tuple[str, str]] = []
        for link, roots in self._hosts:
            read = any(s.link is link and s.ready for s in self._sources.values())
            for index, root in enumerate(roots):
                problem = link.root_problems.get(index)
                if problem is not None:
                    entries.append((str(root), problem))
                elif not read and link.error is not None:
                    entries.append((str(root), f"host unreachable: {link.error}"))
                elif not read and not link.synced:
                    entries.append((str(root), "connecting over ssh…"))
        return entries

    @property
    def problems(self) -> list[str]:
        """One line per host that cannot be reached and per remote root that is missing."""
        lines = [f"{link.target}: unreachable ({link.error}); retrying" for link in self.links if link.error]
        return lines + self.root_problems()

    def root_problems(self) -> list[str]:
        """Remote roots that are missing or not folders, as their hosts say."""
        return [
            f"{roots[i]}: {text}"
            for link, roots in self._hosts
            for i, text in sorted(link.root_problems.copy().items())
        ]

    @property
    def mode(self) -> str:
        up = sum(1 for link in self.links if link.error is None)
        count = len(self.links)
        return f"ssh: {up}/{count} host{'s' if count > 1 else ''} up"


def load(
    roots: Sequence[RemoteRoot],
    options: RunOptions,
    *,
    ssh_options: Sequence[str] | None = None,
    timeout: float = 120.0,
) -> tuple[list[LogSource], list[str]]:
    """One read of every remote root (``trainwatch snapshot``): the sources and the problems."""
    wake = threading.Event()
    remote = RemoteWatch(roots, options, wake.set, interval=0.1, ssh_options=ssh_options, once=True)
    remote.start()
    deadline = time.monotonic() + timeout
    sources: dict[str, RemoteLogSource] = {}
    problems: list[str] = []
    try:
        while True:
            running = remote.running and time.monotonic() < deadline
            wake.wait(0.2)
            wake.clear()
            for key, source in remote.collect()[0].items():
                sources[key] = source
                try:
                    source.refresh()
                except SourceError as exc:
                    problems.append(str(exc))
            if not running:
                break
    finally:
        remote.stop()
    for source in sources.values():
        source.flush()
    for link in remote.links:
        if link.error is not None:
            problems.append(f"{link.target}: unreachable ({link.error})")
        elif not link.synced:
            problems.append(f"{link.target}: no answer in {timeout:g}s")
    problems += remote.root_problems()
    return list(sources.values()), problems
