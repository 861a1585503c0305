"""srun's ``--label``: the task number before every line a job's tasks print.

``srun -l`` (``--label``) writes ``"%*d: "`` (the task id, padded to the
width of the largest) before each line of each task's output, so a whole
log reads ``0: iter 10: loss 3.2…``. No parser's sniff or line grammar
expects it, and a bare number and a colon cannot be told from a line's own
text line by line (``100: loss 2.3`` may be a step). A log is taken as
labelled from what most of its lines share: nearly every line labelled, and
the labels repeat (task ids, unlike steps). Once a log is, every line loses
its label before any parser sees it; the lines the batch script printed
itself (no label) go through as they are.
"""

from __future__ import annotations

import re

_LABEL = re.compile(r"^ *[0-9]{1,6}: ", re.MULTILINE)
_LABEL_BYTES = re.compile(rb"^ *([0-9]{1,6}): ", re.MULTILINE)
#: Lines looked at, and the share of them that must carry a label.
MIN_LINES = 3
SHARE = 0.9
#: Bytes of a chunk looked at (the decision is the same on its first lines).
LOOK = 1 << 16


def labelled(head: bytes) -> bool:
    """Whether the whole lines of ``head`` carry srun's label: at least
    MIN_LINES non-blank lines, SHARE of them labelled, and no more distinct
    labels than a third of the labelled lines (each task prints several)."""
    end = head.rfind(b"\n")
    if end < 0:
        return False
    whole = head[:end]
    lines = sum(1 for line in whole.split(b"\n") if line.strip())
    labels = _LABEL_BYTES.findall(whole)
    if lines < MIN_LINES or len(labels) < SHARE * lines:
        return False
    return len(set(labels)) <= max(1, len(labels) // 3)


def may_be_labelled(data: bytes | memoryview) -> bool:
    """A cheap first look at a chunk: a label on one of its first lines."""
    return _LABEL_BYTES.search(data[:4096]) is not None


def unlabel(text: str) -> str:
    """``text`` without the label at the start of each of its lines."""
    return _LABEL.sub("", text)


def unlabel_bytes(data: bytes) -> bytes:
    """``unlabel`` of undecoded bytes (for sniffing)."""
    return _LABEL_BYTES.sub(b"", data)
