"""The live app: one snapshot source in, screens out.

The source (``trainwatch.ingest.watcher.Watcher`` in real use, a fake in tests) calls
``publish`` from its worker thread with each new immutable ``Snapshot``. The
app turns that into a message (thread-safe, never blocks the worker, and a
burst of snapshots collapses to the newest), keeps the latest one in its
reactive ``snapshot`` and hands it to every live screen in one batch update.
Widgets then redraw only what changed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, cast

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen

from trainwatch.outputs.reasons import no_runs_reason
from trainwatch.tui import cells, terminal
from trainwatch.tui.alerts import desktop_sequence, status_alerts
from trainwatch.tui.header import HeaderBar
from trainwatch.tui.live import LiveScreen
from trainwatch.tui.main_screen import MainScreen
from trainwatch.tui.trend import ChartOptions

if TYPE_CHECKING:
    from textual.driver import Driver

    from trainwatch.core.rows import Snapshot

EXPORT_FALLBACK = "trainwatch-exports"
#: New problems notified one by one at a time; the rest are counted in one more.
PROBLEMS_SHOWN = 5


class SnapshotSource(Protocol):
    """What the app needs from a watcher (``trainwatch.ingest.watcher.Watcher``)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def refresh_now(self) -> None: ...
    def set_target(self, target: int | None) -> None: ...
    @property
    def mode(self) -> str: ...
    @property
    def network_paths(self) -> list[Path]: ...


Publish = Callable[["Snapshot"], None]
SourceFactory = Callable[[Publish], SnapshotSource]


class SnapshotReady(Message):
    """A new snapshot from the source's thread."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotReady)  # only the newest matters


def describe_paths(paths: Sequence[Path]) -> str:
    """``~/runs`` for one path, ``~/a, ~/b`` for two, ``5 paths`` beyond."""
    home = str(Path.home())

    def short(path: Path) -> str:
        text = str(path.expanduser().absolute())
        text = "~" + text[len(home) :] if text == home or text.startswith(home + os.sep) else text
        return cells.safe_text(text)

    if len(paths) <= 2:
        return ", ".join(short(p) for p in paths) or "."
    return f"{len(paths)} paths"


def default_export_dir(watched: Iterable[Path], cwd: Path, home: Path) -> Path:
    """The current directory, unless it is watched: exports there would be
    picked up as new logs (.csv, .json), so then ``~/trainwatch-exports``;
    and if that is watched too (``trainwatch ~``), a hidden folder, which no
    watch looks into: ``~/.local/share/trainwatch/exports``."""
    roots = [root if root.is_dir() else root.parent for root in (path.resolve() for path in watched)]

    def inside(folder: Path) -> bool:
        # Below a root and in no hidden folder on the way (discovery skips those).
        return any(
            (folder == root or root in folder.parents)
            and not any(part.startswith(".") for part in folder.relative_to(root).parts)
            for root in roots
        )

    candidates = (cwd.resolve(), home / EXPORT_FALLBACK, home / ".local" / "share" / "trainwatch" / "exports")
    return next((c for c in candidates if not inside(c)), candidates[-1])


class TrainwatchApp(App[int]):
    """trainwatch's live monitor."""

    CSS_PATH = Path(__file__).with_name("trainwatch.tcss")
    TITLE = "trainwatch"
    # Ctrl-C quits as in htop, nvitop and tail -f (Textual's own binding only
    # says "press ctrl+q"); Ctrl-Z suspends as in any terminal program.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("z", "smooth", "Smooth"),
        Binding("l", "log_scale", "Log"),
        Binding("e", "export", "Export"),
        Binding("t", "target", "Target"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "interrupt", "Quit", show=False, priority=True),
        Binding("ctrl+z", "suspend_process", "Suspend", show=False),
    ]

    snapshot: var[Snapshot | None] = var(None, always_update=True)

    def __init__(
        self,
        source_factory: SourceFactory,
        *,
        where: str = ".",
        watched: Sequence[Path] = (),
        clock: Callable[[], datetime] = datetime.now,
        export_dir: Path | None = None,
        bell: bool = False,
        ascii_glyphs: bool = False,
        desktop: str | None = None,
    ) -> None:
        self._ascii_glyphs = ascii_glyphs  # read by get_driver_class, which Textual's __init__ calls
        super().__init__()
        self.desktop = desktop  # "osc9", "osc777": desktop notifications through the terminal
        self.where = where
        self.clock = clock
        self.ring_bell = bell
        self.export_dir = export_dir or default_export_dir(watched, Path.cwd(), Path.home())
        self.exported: list[Path] = []
        self._source_factory = source_factory
        self._source: SnapshotSource | None = None
        self._source_error: OSError | None = None
        # Snapshots published before the app is mounted wait here (start_source).
        self._early_lock = threading.Lock()
        self._mounted = False
        self._early: Snapshot | None = None
        self._drawn = threading.Event()  # the first frame is on screen (start_source)
        self._problems_seen: set[str] = set()
        self.chart_options = ChartOptions()
        #: Why no run was found, when the app ends with none (printed on stderr then).
        self.no_runs_reason: str | None = None

    # ------------------------------------------------------------ lifecycle

    def get_driver_class(self) -> type[Driver]:
        base = super().get_driver_class()
        if getattr(self, "_ascii_glyphs", False):
            encoding = getattr(sys.__stderr__, "encoding", None) or "ascii"
            return cast("type[Driver]", terminal.ascii_driver(base, encoding))
        return base

    def get_default_screen(self) -> Screen[None]:
        return MainScreen(self.where, self._mode, self.clock)

    def _mode(self) -> str:
        """How we watch, for the header; with the first-read progress while it lasts."""
        if self._source is None:
            return "starting"
        # ``loading`` is an optional extra of the Watcher: (files read, files found).
        loading = getattr(self._source, "loading", None)
        if loading and loading[0] < loading[1]:
            return f"{self._source.mode} · reading {loading[0]}/{loading[1]} files…"
        return self._source.mode

    def start_source(self) -> None:
        """Create and start the source now, before the app runs: the logs are
        then read while Textual starts, and the first frame can hold rows.
        Without this call the source starts after the first frame."""
        try:
            self._source = self._source_factory(self._publish)
            # A watcher can read only the smallest logs until the first frame
            # is drawn (an optional extra: ``Watcher.hold_until``).
            hold = getattr(self._source, "hold_until", None)
            if hold is not None:
                hold(self._drawn)
            self._source.start()
        except OSError as exc:
            self._source_error = exc

    def on_mount(self) -> None:
        if not self.is_headless:
            # SIGTERM and SIGHUP (a closed terminal, a kill) end the app as q
            # does, so the terminal gets its screen, cursor and mouse back;
            # SIGINT too, with the shell's status for it.
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, self.exit, None, 128 + sig)
            # Back from Ctrl-Z (or a SIGTSTP from outside): redraw everything.
            self.app_resume_signal.subscribe(self, self._resumed)
        with self._early_lock:
            self._mounted = True
            early, self._early = self._early, None
        if early is not None:
            self.snapshot = early
        # Without an early start, create and start the source once the first
        # frame is on screen: the user sees "loading…" at once, whatever
        # importing the parsers and the first read cost.
        self.call_after_refresh(self._start_source)

    def _start_source(self) -> None:
        self._drawn.set()  # the first frame is on screen
        if self._source is None and self._source_error is None:
            self.start_source()
        if self._source_error is not None:
            exc = self._source_error
            self.notify(f"cannot watch: {exc.strerror or exc}", severity="error", markup=False, timeout=30)
            return
        assert self._source is not None
        for header in self.query(HeaderBar):
            header.refresh()  # it shows the watch mode, known only now
        if self._source.network_paths and "poll" not in self._source.mode:
            where = ", ".join(cells.safe_text(str(p)) for p in self._source.network_paths)
            self.notify(
                f"{where} is on a network filesystem, where file events can be missed; consider trainwatch --poll 2",
                severity="warning",
                markup=False,
                timeout=15,
            )

    def _resumed(self, app: object) -> None:
        self.refresh(repaint=True, layout=True)
        self.screen.refresh(repaint=True, layout=True)

    def on_unmount(self) -> None:
        self.stop_source()

    def stop_source(self) -> None:
        if self._source is not None:
            self._source.stop()

    def _publish(self, snapshot: Snapshot) -> None:
        """Called by the source, usually from its worker thread."""
        with self._early_lock:
            if not self._mounted:  # the app is still starting: keep the newest for on_mount
                self._early = snapshot
                return
        self.post_message(SnapshotReady(snapshot))

    @on(SnapshotReady)
    def _receive(self, message: SnapshotReady) -> None:
        self.snapshot = message.snapshot

    def watch_snapshot(self, old: Snapshot | None, new: Snapshot | None) -> None:
        if new is None:
            return
        self._report_problems()
        problems = list(getattr(self._source, "problems", None) or [])
        self.no_runs_reason = None if new.rows else no_runs_reason(self.where, problems, new.unrecognised)
        for alert in status_alerts(old, new):
            self.notify(alert.message, severity=alert.severity, markup=False, timeout=10)
            if self.ring_bell:
                self.bell()
            if self.desktop:
                self._desktop_notify(alert.status, alert.message)
        # Only the screen shown: one below it (the main screen under the help,
        # a detail view, a dialog) takes the newest when it comes back.
        if isinstance(self.screen, LiveScreen):
            with self.batch_update():
                self.screen.snapshot = new

    def _desktop_notify(self, status: str, message: str) -> None:
        """Raise ``message`` on the user's desktop through the terminal (``alerts.desktop_sequence``)."""
        if self.is_headless or self._driver is None:
            return
        sequence = desktop_sequence(self.desktop or "osc9", f"trainwatch: {status}", message, tmux="TMUX" in os.environ)
        self._driver.write(sequence)  # as Textual's own bell() writes BEL

    def _report_problems(self) -> None:
        """Each new path problem (unreadable file, vanished folder) once, as one
        line; past a few at once, one line that counts the rest (a folder of
        50,000 FIFOs is not 50,000 notifications)."""
        problems = getattr(self._source, "problems", None) or []
        new = [p for p in problems if p not in self._problems_seen]
        self._problems_seen.update(new)
        for problem in new[:PROBLEMS_SHOWN]:
            self.notify(cells.safe_text(problem), severity="error", markup=False, timeout=15)
        if len(new) > PROBLEMS_SHOWN:
            more = f"… and {len(new) - PROBLEMS_SHOWN:,} more files that cannot be read"
            self.notify(more, severity="error", markup=False, timeout=15)

    # -------------------------------------------------------------- actions

    def action_interrupt(self) -> None:
        """Ctrl-C: quit, with the shell's status for an interrupt."""
        self.exit(return_code=130)

    def action_smooth(self) -> None:
        self._set_chart_options(self.chart_options.next_smoothing())

    def action_log_scale(self) -> None:
        self._set_chart_options(self.chart_options.toggled_log())

    def _set_chart_options(self, options: ChartOptions) -> None:
        self.chart_options = options
        for screen in self.screen_stack:
            if isinstance(screen, LiveScreen):
                screen.chart_options = options
        self.notify(f"loss chart: {options.describe() or 'raw, linear scale'}", timeout=2)

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        """The palette's screenshot: an SVG in the export folder (the current
        one, or --export-dir), and a note of where; Textual's default
        (~/Downloads) is missing on most servers."""
        folder = Path(path) if path else self.export_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
            saved = self.save_screenshot(filename, str(folder), time_format)
        except OSError as exc:
            where = exc.filename or folder
            self.notify(f"screenshot failed: {exc.strerror or exc}: {where}", severity="error", markup=False)
            return None
        self.notify(f"screenshot saved to {saved}", title="Screenshot", markup=False)
        return None

    def action_help(self) -> None:
        from trainwatch.tui.dialogs import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        # Installed once, shown again and again: composing and mounting it
        # anew cost more than drawing it.
        if not self.is_screen_installed("help"):
            self.install_screen(HelpScreen(), "help")
        self.push_screen("help")

    def action_export(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            self.notify("Nothing to export yet.", severity="warning")
            return
        # A worker thread: the first export imports pandas (~0.3 s).
        self.run_worker(partial(self._export, snapshot, self.export_dir), thread=True, group="export")

    def _export(self, snapshot: Snapshot, folder: Path) -> None:
        from trainwatch.outputs.export import export

        try:
            folder.mkdir(parents=True, exist_ok=True)
            written = export(snapshot, folder)
        except OSError as exc:
            where = exc.filename or folder
            self.notify(f"export failed: {exc.strerror or exc}: {where}", severity="error", markup=False)
            return
        self.exported.extend(written)
        names = ", ".join(p.name for p in written)
        self.notify(f"exported {names} to {folder}", title="Export", markup=False)

    def action_target(self) -> None:
        from trainwatch.tui.dialogs import TargetScreen

        self.push_screen(TargetScreen(), self._target_chosen)

    def _target_chosen(self, target: int | bool | None) -> None:
        if target is False or self._source is None:
            return
        value = None if target is None or target is True else int(target)
        self._source.set_target(value)
        self.notify(f"target: {value:,} iterations for every run" if value else "target: each log's own")

    # ------------------------------------------------------ command palette

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Export snapshot", f"Write md, csv and json to {self.export_dir}", self.action_export)
        yield SystemCommand("Set target", "Iterations to count progress and ETA to", self.action_target)
        yield SystemCommand("Help: keys", "Show every key", self.action_help)
        if isinstance(screen, MainScreen):
            main = screen
            yield SystemCommand("Compare runs", "Overlay the marked runs' loss curves", main.action_compare)
            yield SystemCommand("Filter runs", "Show only runs whose name matches", main.action_filter)
            yield SystemCommand("Sort: reverse", "Reverse the current order", main.action_reverse)
            yield SystemCommand("Sort by file order", "As discovered", partial(main.table.set_sort, None))
            for key in cells.SORTABLE:
                title = cells.COLUMN[key].title
                yield SystemCommand(f"Sort by {title}", f"Order runs by {title}", partial(main.table.set_sort, key))


def run_app(
    paths: list[Path],
    *,
    source_factory: SourceFactory,
    bell: bool = False,
    export_dir: Path | None = None,
    ascii_glyphs: bool | None = None,
    desktop: str | None = None,
) -> int:
    """Open the live monitor on ``paths``; the exit status (130 after Ctrl-C,
    128 + the signal's number after SIGINT, SIGTERM or SIGHUP).

    ``source_factory`` makes the watcher that feeds it (``wiring.watcher_factory``:
    the app never imports the files stage itself). ``ascii_glyphs``: draw
    with ASCII only; by default, when the terminal's encoding lacks the
    box and chart characters."""
    with terminal.drawing_on_terminal():
        if ascii_glyphs is None:
            ascii_glyphs = terminal.needs_ascii()
        app = TrainwatchApp(
            source_factory,
            where=describe_paths(paths),
            watched=paths,
            export_dir=export_dir,
            bell=bell,
            ascii_glyphs=ascii_glyphs,
            desktop=desktop,
        )
        app.start_source()  # read the logs while Textual starts up
        try:
            status = app.run()
        finally:
            app.stop_source()  # also when the app never mounted (on_unmount stops it otherwise)
    if app.no_runs_reason:
        sys.stderr.write(f"trainwatch: {cells.safe_text(app.no_runs_reason)}\n")
    if app.exported:
        folders = sorted({str(p.parent) for p in app.exported})
        print(f"trainwatch: exported {len(app.exported)} files to {', '.join(folders)}")
    return status if status is not None else app.return_code or 0
