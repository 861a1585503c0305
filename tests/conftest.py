"""Shared fixtures, and the ``--full`` switch for long reliability runs.

The suite stands on its own: every parser, the aggregator, the watcher and
the app are tested on sample logs the tests write. The real third-party logs
of ``../shared/corpus`` are an extra layer, used where they are present.
``TRAINWATCH_CORPUS`` names another folder, or ``none`` to run as a fresh
clone would (CI runs the suite both ways).
"""

import os
from pathlib import Path

import pytest


def _corpus_dir() -> Path:
    chosen = os.environ.get("TRAINWATCH_CORPUS", "")
    if chosen.lower() == "none":
        return Path("/nonexistent/trainwatch-corpus")  # no folder: every corpus test skips
    if chosen:
        return Path(chosen).expanduser().resolve()
    return Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


#: The corpus folder. Modules that parametrize over it at collection time
#: import it from here (``from conftest import CORPUS``: tests/ is on sys.path).
CORPUS = _corpus_dir()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full",
        action="store_true",
        default=False,
        help="run the reliability tests at full size (1,000 rewrites, larger fuzz budgets); also runs @slow tests",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--full"):
        return
    skip = pytest.mark.skip(reason="slow: run with --full")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def full(request: pytest.FixtureRequest) -> bool:
    """Whether ``--full`` was given: tests scale their sizes with it."""
    return bool(request.config.getoption("--full"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real third-party logs in ../shared/corpus (read in place, never copied)."""
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not present ({CORPUS})")
    return CORPUS
