"""Commands the terminal benchmarks launch: trainwatch itself and its floors."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

SEED_RUNS = ("run_20251113_225009", "run_20251113_095419", "run_20251112_122613", "run_20251110_174040")
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "llm_tii_json"

#: The smallest Textual app that paints one line: the floor of any Textual UI's first frame.
TEXTUAL_FLOOR = """
from textual.app import App
from textual.widgets import Static

class Floor(App):
    def compose(self):
        yield Static("floor-ready")

Floor().run()
"""


#: The smallest Textual app whose "?" opens and closes a screen: the floor of a key that shows a screen.
TEXTUAL_KEY_FLOOR = """
from textual.app import App
from textual.screen import Screen
from textual.widgets import Static

class Help(Screen):
    BINDINGS = [("question_mark", "app.pop_screen", "Close")]

    def compose(self):
        yield Static("trainwatch · keys")

class Floor(App):
    BINDINGS = [("question_mark", "push_screen('help')", "Help")]
    SCREENS = {"help": Help}

    def compose(self):
        yield Static("floor-ready")

Floor().run()
"""


def trainwatch() -> list[str]:
    """The installed console script, as a user runs it (else ``python -m trainwatch``)."""
    script = shutil.which("trainwatch")
    return [script] if script else [sys.executable, "-m", "trainwatch"]


def seed_runs() -> list[Path]:
    """The four runs of the seed's table (shared/corpus), where that folder exists."""
    paths = [CORPUS / f"{run}.json" for run in SEED_RUNS]
    return paths if all(p.is_file() for p in paths) else []


def iter_line(step: int) -> str:
    return f"iter {step}: loss 2.{step % 9000 + 1000}, time 138.25ms, mfu 38.12%\n"


def progress_marker(step: int) -> str:
    """How the runs table shows a run at iteration ``step`` ("12,345/")."""
    return f"{step:,}/"
