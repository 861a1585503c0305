"""Modal dialogs: the key help and the target prompt."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.validation import Function
from textual.widgets import Input, Static

from trainwatch.core import fmt

KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Runs",
        (
            ("↑↓ PgUp PgDn", "select a run (the plots follow)"),
            ("⏎", "details: configuration, curves, caveats, events"),
            ("space", "mark / unmark for comparing"),
            ("c", "compare the marked runs (or all shown runs)"),
            ("t i w", "compare: x = tokens seen / iteration / wall time"),
            ("s S", "sort by the next column / reverse; or click a header"),
            ("/", "filter by name; ⏎ keeps it, Esc clears it"),
        ),
    ),
    (
        "Everywhere",
        (
            ("e", "export the snapshot as md, csv and json"),
            ("t", "set the target iteration of every run"),
            ("ctrl+p", "command palette (sort, export, compare, target)"),
            ("?", "this help"),
            ("q Esc", "back; q on the main screen quits"),
        ),
    ),
    (
        "Marks",
        (
            ("● ◐ ✓ ✗", "running, stalled, finished, diverged or failed"),
            ("○", "exited: the process writing the log is gone, and the log says neither"),
            ("⚑", "a figure with a caveat: the detail view explains it"),
        ),
    ),
)


def help_table() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for index, (section, keys) in enumerate(KEYS):
        if index:
            table.add_row("", "")
        table.add_row(Text(section, style="bold #5fafff"), "")
        for key, what in keys:
            table.add_row(Text(key), Text(what))
    return table


class HelpScreen(ModalScreen[None]):
    """The keys, one screen. Any of Esc, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box", classes="dialog"):
            yield Static(help_table())

    def on_mount(self) -> None:
        self.query_one("#help-box").border_title = "trainwatch · keys"


def _valid_target(text: str) -> bool:
    try:
        parse_target(text)
    except ValueError:
        return False
    return True


def parse_target(text: str) -> int | None:
    """``"2,000"`` → 2000; empty → ``None`` (each log's own target); ValueError otherwise."""
    return fmt.parse_count(text) if text.strip() else None


class TargetScreen(ModalScreen[int | None | bool]):
    """Ask for the target iteration; dismisses with the number, ``None`` to
    reset to each log's target, or ``False`` when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="target-box", classes="dialog"):
            yield Static(Text("Iterations to count progress and ETA to (empty: each log's own target)"))
            yield Input(
                placeholder="e.g. 2000",
                id="target-input",
                validators=[Function(_valid_target, f"a whole number from 1 to {fmt.MAX_COUNT:,}")],
            )
            yield Static(id="target-error")

    def on_mount(self) -> None:
        self.query_one("#target-box").border_title = "Target"

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        if not _valid_target(event.value):
            message = f"a whole number from 1 to {fmt.MAX_COUNT:,}, please"
            self.query_one("#target-error", Static).update(Text(message, style="red"))
            return
        self.dismiss(parse_target(event.value))

    def action_cancel(self) -> None:
        self.dismiss(False)
