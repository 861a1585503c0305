"""Reliability tests: faults, hostile input, nothing lost (issue 6)."""

from __future__ import annotations

import pytest

from . import helpers


def pytest_configure(config: pytest.Config) -> None:
    # Called when this conftest is loaded, before the test modules here are
    # imported: their hypothesis settings read ``helpers.FULL`` at import.
    helpers.FULL = bool(config.getoption("--full", default=False))
