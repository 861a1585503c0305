"""Shared fixtures, and the ``--full`` switch for long reliability runs."""

from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


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
        pytest.skip("../shared/corpus not present")
    return CORPUS
