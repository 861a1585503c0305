"""Shared fixtures."""

from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real third-party logs in ../shared/corpus (read in place, never copied)."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus not present")
    return CORPUS
