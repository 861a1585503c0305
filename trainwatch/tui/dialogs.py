"""Modal dialogs: the key help and the target prompt."""

from __future__ import annotations

import functools
import io
from typing import ClassVar

from rich.console import Console
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.geometry import Size
from textual.screen import ModalScreen
from textual.validation import Function
from textual.widget import Widget
from textual.widgets import Input, Static

from trainwatch.core import fmt
from trainwatch.tui.ordered_input import OrderedInput

KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Runs",
        (
            ("↑↓ j k", "select a run (the charts follow); PgUp PgDn, g G: first, last"),
            ("⏎", "details: configuration, curves, the log's end, caveats, events"),
            ("space", "mark / unmark for comparing"),
            ("c", "compare the marked runs (or all shown runs)"),
            ("/", "filter by name; ⏎ keeps it, Esc clears every filter"),
            ("f p", "hide finished runs / show only problems (again: all)"),
            ("s S", "sort by the next column / reverse; or click a header"),
        ),
    ),
    (
        "Charts",
        (
            ("z", "smooth the loss: EMA 0.6, 0.9, 0.99, off (debiased, as TensorBoard)"),
            ("l", "loss on a log scale / linear"),
            ("x 1 2 3", "compare: x-axis next / tokens seen / iteration / wall time"),
            ("!", "detail: the log from the error that ended the run"),
        ),
    ),
    (
        "Everywhere",
        (
            ("e", "export the snapshot as md, csv and json"),
            ("t", "set the target iteration of every run"),
            ("ctrl+p", "command palette (sort, export, compare, target, screenshot)"),
            ("?", "this help"),
            ("q Esc", "back; q on the main screen quits"),
            ("ctrl+c ctrl+z", "quit / suspend (fg resumes)"),
        ),
    ),
    (
        "Marks",
        (
            ("● ◐ ✓ ✗", "running, stalled, finished, diverged or failed"),
            ("○", "exited: the process writing the log is gone, and the log says neither"),
            ("⚑", "a figure with a caveat: the detail view explains it"),
            ("│ ┆", "s/iter chart: an eval (left out of the rate) / a checkpoint"),
        ),
    ),
)


@functools.cache
def help_text(width: int) -> Text:
    """``help_table`` laid out once for a width, as styled text: a Rich
    ``Table`` is laid out again at every render of its widget (a dozen times
    as the help screen opens and closes), which cost most of the time ``?``
    took."""
    console = Console(width=max(width, 20), file=io.StringIO(), color_system=None)
    text = Text(end="")
    for index, line in enumerate(console.render_lines(help_table(), pad=False)):
        if index:
            text.append("\n")
        for segment in line:
            text.append(segment.text, segment.style)
    text.rstrip()
    return text


class HelpBody(Widget):
    """``help_text`` at the width the dialog gives it: less a scrollbar's
    columns when the help is taller than the terminal, more on none."""

    DEFAULT_CSS = "HelpBody { height: auto; }"

    def render(self) -> Text:
        return help_text(self.size.width)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return help_text(width).plain.count("\n") + 1


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
            yield HelpBody()

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
            yield OrderedInput(
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
