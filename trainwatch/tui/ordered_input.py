"""An ``Input`` that applies every key in the order it was typed.

Textual's ``Input`` inserts printable characters in its own key handler but
runs its bound keys (backspace, arrows, ctrl+w...) only after the key event
has bubbled up to the app. When keys arrive in one burst (a laggy SSH link,
a paste of keystrokes, a fast typist on a loaded box), ``abc⌫de`` then
becomes ``abcd``: the backspace lands after the ``e``. Upstream:
Textualize/textual#6605 (fix proposed in #6631). This subclass runs the
input's own bindings inline, in its key handler, as that fix does; the test
``test_plain_input_still_reorders_a_burst`` says when it can go.
"""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.widgets import Input


def _own_bindings() -> dict[str, str]:
    """Input's bound keys and their actions (``backspace`` → ``delete_left``)."""
    actions: dict[str, str] = {}
    for binding in Input.BINDINGS:
        if isinstance(binding, Binding):
            for key in binding.key.split(","):
                actions.setdefault(key.strip(), binding.action)
    return actions


class OrderedInput(Input):
    """``Input`` whose editing keys take effect between the characters around them."""

    _ACTIONS = _own_bindings()

    async def on_key(self, event: events.Key) -> None:
        action = self._ACTIONS.get(event.key)
        if action is None:
            return  # a character (Input inserts it) or another widget's key
        event.prevent_default()
        event.stop()
        await self.run_action(action)
