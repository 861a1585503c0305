"""Console logs captured through a launcher that tags every line.

``mpirun --tag-output`` writes ``[1,0]<stdout>:`` before each line (job,
rank, stream); srun ``--label`` and torchrun write their own. A log read
through such a prefix must give exactly the figures of the bare log: here
every console log of the corpus is tagged line by line (in a temporary
folder; the corpus is read in place) and compared field by field.
"""

from __future__ import annotations

import dataclasses
import math
from array import array
from datetime import datetime
from pathlib import Path

import pytest

from trainwatch.core.stats import RunStats
from trainwatch.ingest.source import LogSource

NOW = datetime(2030, 1, 1)
#: Formats a program prints to its console (files it writes itself carry no launcher tags).
CONSOLE = ("nanogpt_stdout", "torchtitan_stdout", "megatron_stdout", "llmc_stdout", "hf_trainer_stdout")
#: From the file's modification time, which differs between the two copies.
FILE_TIME = {"last_update_at", "finish_at", "eta_s", "wall_elapsed_s"}


def _stats(path: Path) -> tuple[str | None, RunStats]:
    source = LogSource(path)
    source.refresh()
    return source.format, source.agg.stats(NOW)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, tuple | array) and isinstance(b, tuple | array):  # (a chart series: arrays of floats)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("prefix", ["[1,0]<stdout>:", "[1,12]<stderr>: ", "3: [default3]:", "0: ", " 3: "])
@pytest.mark.parametrize("folder", CONSOLE)
def test_tagged_console_log_reads_as_the_bare_one(corpus: Path, tmp_path: Path, folder: str, prefix: str) -> None:
    for path in sorted((corpus / folder).iterdir()):
        bare_format, bare = _stats(path)
        if bare_format not in CONSOLE:
            continue  # llm.c's own main.log sits beside its console logs
        tagged = tmp_path / path.name
        lines = path.read_bytes().split(b"\n")
        tagged.write_bytes(b"\n".join(prefix.encode() + line if line else line for line in lines))
        tagged_format, stats = _stats(tagged)
        assert tagged_format == bare_format, path.name
        differ = [
            f.name
            for f in dataclasses.fields(RunStats)
            if f.name not in FILE_TIME and not _same(getattr(bare, f.name), getattr(stats, f.name))
        ]
        assert not differ, (path.name, differ)
