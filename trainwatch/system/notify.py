"""Push alerts: a run stalled, diverged, failed, exited, finished, or will pass its Slurm time limit.

Events come from published snapshots (``alert_events.detect``, pure): a run's conditions
now against those last seen. A message goes out once per event, ever: what
was sent is kept in a small JSON file under the user's state directory (one
per set of destinations, locked while read and written), so a restart of
trainwatch, or a second trainwatch with the same ``--notify``, sends no
duplicate. The runs' last conditions are kept there too: what happened
while trainwatch was down is sent at the next start. A run seen for the
first time reports only what happened after trainwatch started (starting it
on a folder of old runs sends nothing).

Messages go out through apprise (ntfy, Slack, Discord, Telegram, e-mail,
``json://`` webhooks ...; imported on first use) from a thread of its own,
rate-limited: bursts of at most ``BURST`` messages, then one per ``REFILL_S``
seconds; a backlog beyond that goes out as one digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO

from trainwatch.core.rows import Snapshot
from trainwatch.system.alert_events import Event, detect

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: apprise's notify types, by event.
_TYPE = {"finished": "success", "stalled": "warning", "over_limit": "warning"}
#: A run that stalls again within this many seconds of its last stall message gets none.
STALL_COOLDOWN_S = 1800.0
BURST = 5
REFILL_S = 12.0
#: Sent events are remembered this long (then a file's history is pruned).
KEEP_S = 90 * 86400.0


# ------------------------------------------------------------------ ledger


def state_dir() -> Path:
    """Where trainwatch keeps what it sent (``platformdirs.user_state_dir``:
    ``~/.local/state/trainwatch`` on Linux, ``$XDG_STATE_HOME`` if set)."""
    import platformdirs

    return Path(platformdirs.user_state_dir("trainwatch", appauthor=False))


class Ledger:
    """What was sent to one set of destinations, and each run's last conditions; in a locked JSON file."""

    def __init__(self, urls: Sequence[str], folder: Path | None = None) -> None:
        digest = hashlib.sha256("\n".join(sorted(set(urls))).encode()).hexdigest()[:16]
        self.path = (folder or state_dir()) / f"notify-{digest}.json"
        self.problem: str | None = None
        self._memory: dict[str, object] = {"sent": {}, "runs": {}}  # used when the file cannot be

    def previous(self) -> dict[str, frozenset[str]]:
        """Each run's conditions as last recorded."""
        with self._open() as data:
            runs = data.get("runs", {})
            return {k: frozenset(v) for k, v in runs.items() if isinstance(v, list)} if isinstance(runs, dict) else {}

    def record(self, changed: Mapping[str, frozenset[str]], events: Sequence[Event], now: float) -> list[Event]:
        """Record the runs' new conditions and claim ``events``: those not sent
        before (and not a stall too soon after the run's last), now marked sent."""
        claimed: list[Event] = []
        with self._open(write=True) as data:
            sent = data.setdefault("sent", {})
            runs = data.setdefault("runs", {})
            assert isinstance(sent, dict) and isinstance(runs, dict)
            runs.update({path: sorted(kinds) for path, kinds in changed.items()})
            for event in events:
                if event.key in sent:
                    continue
                sent[event.key] = now
                if event.kind == "stalled" and _stalled_lately(sent, event, now):
                    continue
                claimed.append(event)
            for key in [k for k, at in sent.items() if not isinstance(at, float | int) or now - at > KEEP_S]:
                del sent[key]
        return claimed

    @contextlib.contextmanager
    def _open(self, write: bool = False) -> Iterator[dict[str, object]]:
        """The file's data, locked against other trainwatch processes; written back if ``write``."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(self.path.with_suffix(".lock"), "a+b")  # noqa: SIM115 (closed below)
        except OSError as exc:
            self._fallback(exc)
            yield self._memory
            return
        with lock:
            _lock(lock)
            data = self._read()
            yield data
            if write:
                try:
                    tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(data), encoding="utf-8")
                    os.replace(tmp, self.path)
                    self._memory = data
                except OSError as exc:
                    self._fallback(exc)

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"sent": {}, "runs": {}}
        except (OSError, ValueError) as exc:  # unreadable or damaged: start afresh, keep going
            self._fallback(exc)
            return dict(self._memory)
        return data if isinstance(data, dict) else {"sent": {}, "runs": {}}

    def _fallback(self, exc: Exception) -> None:
        if self.problem is None:
            self.problem = f"cannot keep notification state in {self.path}: {exc}; a restart may repeat messages"
            log.warning("trainwatch: %s", self.problem)


def _lock(handle: IO[bytes]) -> None:
    with contextlib.suppress(ImportError, OSError):  # no fcntl (Windows): one process at a time is the user's care
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX)


def _stalled_lately(sent: dict[str, object], event: Event, now: float) -> bool:
    prefix = f"{event.path}|stalled|"
    return any(
        key.startswith(prefix) and key != event.key and isinstance(at, float | int) and now - at < STALL_COOLDOWN_S
        for key, at in sent.items()
    )


# ----------------------------------------------------------------- sending


def check_urls(urls: Sequence[str]) -> list[str]:
    """The URLs apprise does not accept (an unknown scheme, a malformed address)."""
    import apprise

    _quiet_apprise()
    return [url for url in urls if not apprise.Apprise().add(url)]


def _quiet_apprise() -> None:
    # apprise logs delivery problems; with no handler Python would print them over the TUI.
    logger = logging.getLogger("apprise")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


Send = Callable[[str, str, str], bool]


def apprise_sender(urls: Sequence[str]) -> Send:
    """A ``send(title, body, kind)`` through apprise to every URL; ``True`` when all took it."""
    import apprise

    _quiet_apprise()
    hub = apprise.Apprise()
    for url in urls:
        hub.add(url)
    types = {
        "success": apprise.NotifyType.SUCCESS,
        "warning": apprise.NotifyType.WARNING,
        "failure": apprise.NotifyType.FAILURE,
        "info": apprise.NotifyType.INFO,
    }

    def send(title: str, body: str, kind: str) -> bool:
        return bool(hub.notify(body=body, title=title, notify_type=types[_TYPE.get(kind, "failure")]))

    return send


class Notifier:
    """Watches published snapshots and sends each new event once, from its own thread."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        ledger: Ledger | None = None,
        send: Send | None = None,
        clock: Callable[[], datetime] = datetime.now,
        burst: int = BURST,
        refill_s: float = REFILL_S,
    ) -> None:
        self.urls = list(urls)
        self._ledger = ledger or Ledger(self.urls)
        self._send = send
        self._since = clock()
        self._failures: list[str] = []  # one line per kind of delivery failure
        self._burst, self._refill_s = burst, refill_s
        self._previous: dict[str, frozenset[str]] | None = None
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._tokens = float(burst)
        self._tokens_at = time.monotonic()
        self.sent: list[Event] = []  # what went out, for the curious (tests, a status line)

    @property
    def problems(self) -> list[str]:
        """One line per problem: the state file cannot be kept, a message could not be delivered."""
        ledger = [self._ledger.problem] if self._ledger.problem else []
        return ledger + list(self._failures)

    def observe(self, snapshot: Snapshot) -> None:
        """Note ``snapshot`` (from the watcher's thread): new events are queued for sending."""
        if snapshot.loading:
            return  # (a partial picture: a job's status moves as its other files are read)
        if self._previous is None:
            self._previous = self._ledger.previous()
        events, now = detect(snapshot, self._previous, self._since)
        changed = {path: kinds for path, kinds in now.items() if self._previous.get(path) != kinds}
        if not changed and not events:
            return
        self._previous.update(changed)
        for event in self._ledger.record(changed, events, time.time()):
            self._queue.put(event)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="trainwatch-notify", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is queued (for up to ``timeout`` seconds), then stop."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        send = self._send or apprise_sender(self.urls)
        while True:
            event = self._queue.get()
            if event is None:
                return
            batch = [event]
            stop = False
            while True:  # what else is waiting goes in the same round
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._deliver(send, batch, wait=not stop)
            if stop:
                return

    def _deliver(self, send: Send, batch: list[Event], wait: bool) -> None:
        """Send ``batch`` within the rate limit: one by one while tokens last, the rest as one digest."""
        while batch:
            tokens = self._take_tokens()
            if tokens < 1:
                if not wait:
                    tokens = 1  # stopping: one last digest rather than nothing
                else:
                    time.sleep(self._refill_s * (1 - tokens))
                    continue
            single = batch if len(batch) <= tokens else batch[: int(tokens) - 1]
            for event in single:
                self._one(send, event.title, event.body, event.kind, [event])
            rest = batch[len(single) :]
            if rest:
                title = f"{len(rest)} trainwatch events"
                body = "\n".join(f"{e.title}: {e.reason}" for e in rest)
                self._one(send, title, body, rest[0].kind, rest)
            batch = []

    def _take_tokens(self) -> float:
        now = time.monotonic()
        self._tokens = min(float(self._burst), self._tokens + (now - self._tokens_at) / self._refill_s)
        self._tokens_at = now
        return self._tokens

    def _one(self, send: Send, title: str, body: str, kind: str, events: list[Event]) -> None:
        self._tokens -= 1
        try:
            ok = send(title, body, kind)
        except Exception as exc:  # a destination's surprise must not end the alerting
            log.exception("trainwatch: sending a notification failed")
            ok, why = False, str(exc)
        else:
            why = "a destination did not accept it"
        if ok:
            self.sent.extend(events)
            return
        problem = f"could not deliver a notification ({why}); the next events are tried again"
        if problem not in self._failures:
            self._failures = [*self._failures[-9:], problem]
