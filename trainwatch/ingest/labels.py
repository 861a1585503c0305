"""srun's ``--label``: the task number before every line a job's tasks print.

``srun -l`` (``--label``) writes ``"%*d: "`` (the task id, padded to the
width of the largest) before each line of each task's output, so a whole
log reads ``0: iter 10: loss 3.2…``. No parser's sniff or line grammar
expects it, and a bare number and a colon cannot be told from a line's own
text line by line (``100: loss 2.3`` may be a step). A log is taken as
labelled from the lines seen so far, counted from its first labelled line
(the batch script's own lines come before): at least half of them labelled,
and the labels repeat (a few task ids, unlike steps). The count goes on as
lines come, one at a time in a live log, so the first labelled line already
counts and a log whose numbers turn out to be steps stops being labelled a
few lines on. A labelled log's lines lose their label before any parser sees
them; the lines the batch script printed itself go through as they are.
"""

from __future__ import annotations

import re

# A label after a newline, and one at the start of the text: a pattern that
# starts with a literal is searched for 7x faster than one with ``^`` in
# MULTILINE mode (0.4 against 2.6 ms for 256 KB).
_LABEL = re.compile(r"\n *([0-9]{1,6}): ")
_FIRST_LABEL = re.compile(r" *([0-9]{1,6}): ")
_LABEL_BYTES = re.compile(rb"\n *[0-9]{1,6}: ")
_FIRST_LABEL_BYTES = re.compile(rb" *[0-9]{1,6}: ")
#: The share of lines (from the first labelled one) that must carry a label.
SHARE = 0.5
#: Task ids that may show before their repeats say they are not steps.
FEW_IDS = 8
#: Non-blank lines counted before the decision is kept for good.
TRACKED_LINES = 10_000


class Labels:
    """Whether one log carries srun's labels, from the lines it has shown."""

    __slots__ = ("_ids", "_labelled", "_lines", "_seen", "on")

    def __init__(self) -> None:
        self.on = False
        self._seen = 0  # lines, all of them
        self._lines = 0  # non-blank lines from the first labelled one
        self._labelled = 0
        self._ids: set[str] = set()

    def see(self, text: str) -> None:
        """Count the whole lines of ``text`` (the next ones of the log)."""
        if self._seen >= TRACKED_LINES:
            return  # (decided for good: no more counting on the hot path)
        self._seen += text.count("\n")
        ids = _LABEL.findall(text)
        if (first := _FIRST_LABEL.match(text)) is not None:
            ids.append(first[1])
        if not ids and not self._labelled:
            return  # (the batch script's own lines, before any label)
        self._lines += sum(1 for line in text.split("\n") if line.strip())
        self._labelled += len(ids)
        if len(self._ids) <= FEW_IDS * 4:
            self._ids.update(ids)
        self.on = self._labelled >= SHARE * self._lines and len(self._ids) <= max(FEW_IDS, self._labelled // 3)


def labelled(head: bytes) -> bool:
    """Whether a log starting with ``head`` (whole lines) is labelled: ``Labels`` on it."""
    labels = Labels()
    labels.see(head.decode("utf-8", "replace"))
    return labels.on


def unlabel(text: str) -> str:
    """``text`` without the label at the start of each of its lines."""
    return _LABEL.sub("\n", _FIRST_LABEL.sub("", text, count=1))


def unlabel_bytes(data: bytes) -> bytes:
    """``unlabel`` of undecoded bytes (for sniffing)."""
    return _LABEL_BYTES.sub(b"\n", _FIRST_LABEL_BYTES.sub(b"", data, count=1))
