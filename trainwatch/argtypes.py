"""The types of the command's options: each a text in, a value out, or an
``argparse.ArgumentTypeError`` that argparse prints as one line (exit 2)."""

from __future__ import annotations

import argparse
from datetime import datetime

from trainwatch.core import fmt


def count(text: str) -> int:
    try:
        return fmt.parse_count(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: The largest count an option takes: the largest integer a float (every
#: derived figure) holds exactly. 400 digits overflowed float() in a figure.
MAX_COUNT = 2**53
#: The longest time in seconds an option takes (a year): a timeout of 1e308 s overflows.
MAX_SECONDS = 365 * 86400.0


def positive_int(text: str) -> int:
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
    if not 0 < value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"expected a number from 1 to {MAX_COUNT:,}, got {text[:40]!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text[:40]!r}") from None
    if not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"expected a number above 0 and up to {MAX_SECONDS:g}, got {text[:40]!r}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return value


def moment(text: str) -> datetime:
    """An ISO time; with a zone it is converted to local time (logs are local)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO time like 2025-11-14T06:38:59, got {text!r}") from None
    return moment.astimezone().replace(tzinfo=None) if moment.tzinfo else moment
