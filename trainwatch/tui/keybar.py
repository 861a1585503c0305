"""The key bar at the bottom of each screen: every key that fits, and always help and quit.

Textual's ``Footer`` lays its keys out left to right and cuts what does not
fit, so at 80 columns the main screen lost ``? help`` and ``q quit``. This
bar first tightens its spacing, then leaves out the keys declared last
(the screen's bindings come in order of use, the app's export and target
after them; the help screen lists them all), and keeps help and quit or
back at its right end whatever the width.
"""

from __future__ import annotations

from typing import NamedTuple

from rich.text import Text
from textual import events
from textual.app import RenderResult
from textual.widget import Widget

#: Actions shown whatever the width: how to get help, and how to leave.
ESSENTIAL = ("help", "app.help", "app.pop_screen", "dismiss", "quit", "app.quit")
KEY_STYLE = "bold #5fafff"


class Item(NamedTuple):
    key: str  # the key to simulate on a click
    shown: str  # how the key is written
    label: str
    essential: bool


def arrange(items: list[Item], width: int, extra: Item | None = None) -> list[tuple[Item, str]]:
    """The items that fit ``width`` cells, each with the gap before it:
    two spaces, one where that fits more, then the least needed items go
    (those listed last). Essential items stay, at the end. ``extra`` (the
    command palette) is added only when everything else fits."""
    essential = [i for i in items if i.essential]
    optional = [i for i in items if not i.essential]

    def length(chosen: list[Item], gap: int) -> int:
        return sum(len(i.shown) + 1 + len(i.label) for i in chosen) + gap * len(chosen) + 1

    for gap in (2, 1):
        for cut in range(len(optional), -1, -1):
            chosen = optional[:cut] + essential
            if length(chosen, gap) <= width:
                spaced = [(i, " " * gap) for i in chosen]
                roomy = cut == len(optional) and gap == 2
                if extra is not None and roomy and length([*chosen, extra], gap) + 1 <= width:
                    spaced.append((extra, " " * gap))
                return spaced
            if gap == 2 and cut == len(optional):
                break  # all of them do not fit with wide gaps: try narrow ones before dropping any
    return [(i, " ") for i in essential]


class KeyBar(Widget):
    """One line of ``key label`` pairs, from the screen's active bindings; a click presses the key."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $panel;
        color: $text-muted;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._spans: list[tuple[int, int, str]] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: object) -> None:
        self.refresh()

    def items(self) -> tuple[list[Item], Item | None]:
        """The shown bindings, one per action, in order; and the palette's key."""
        seen: set[str] = set()
        items: list[Item] = []
        palette: Item | None = None
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if binding.key == self.app.COMMAND_PALETTE_BINDING and self.app.ENABLE_COMMAND_PALETTE:
                palette = Item(binding.key, self.app.get_key_display(binding), "palette", False)
            if not binding.show or not enabled or binding.action in seen:
                continue
            seen.add(binding.action)
            label = binding.description.lower()
            items.append(Item(binding.key, self.app.get_key_display(binding), label, binding.action in ESSENTIAL))
        return items, palette

    def render(self) -> RenderResult:
        items, palette = self.items()
        text = Text(no_wrap=True, overflow="crop", end="")
        self._spans = []
        for item, gap in arrange(items, self.size.width, palette):
            text.append(gap)
            start = text.cell_len
            text.append(item.shown, style=KEY_STYLE)
            text.append(" " + item.label)
            self._spans.append((start, text.cell_len, item.key))
        return text

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                self.app.simulate_key(key)
                return
