"""The detail view's log pane: the last lines of the run's log, or its error."""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.reactive import var
from textual.widget import Widget

from trainwatch.tui import cells, logtail
from trainwatch.tui.logtail import LogTail


class LogPane(Widget):
    """``tail`` drawn in the rows it has: the end of the log, or with
    ``at_error`` the lines from the error on, the error's lines in red."""

    DEFAULT_CSS = """
    LogPane {
        height: 14;
        border: round $panel-lighten-2;
        border-title-color: $text;
        border-subtitle-color: $text-muted;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    LogPane.-note {
        height: 3;
    }
    """

    tail: var[LogTail | None] = var(None)
    at_error: var[bool] = var(False)

    def watch_tail(self) -> None:
        # A one-line note (a JSON document, a remote log) needs no tall box.
        self.set_class(self.tail is not None and bool(self.tail.note), "-note")
        self._titles()
        self.refresh()

    def watch_at_error(self) -> None:
        self._titles()
        self.refresh()

    def _titles(self) -> None:
        tail = self.tail
        if tail is None:
            self.border_title = "log"
            self.border_subtitle = None
            return
        where = "from the error" if self.at_error and tail.error_at is not None else "last lines"
        self.border_title = Text(f"log · {logtail.name(tail.path)}" + ("" if tail.note else f" · {where}"))
        self.border_subtitle = f"{tail.error_kind}: ! shows it" if tail.error_kind and not self.at_error else None

    def render(self) -> RenderResult:
        tail = self.tail
        if tail is None:
            return Text("reading…", style="dim")
        if tail.note:
            return Text(tail.note, style="dim")
        start, end = logtail.window(tail, self.size.height, self.at_error)
        out = Text(no_wrap=True, overflow="ellipsis")
        error = tail.error_at
        for index in range(start, end):
            style = cells.RED if error is not None and self.at_error and index >= error else ""
            out.append(tail.lines[index], style=style)
            if index + 1 < end:
                out.append("\n")
        return out
