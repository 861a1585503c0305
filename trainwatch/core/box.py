"""What the machine says about a run, beside its log: the writing process and its GPUs.

A log cannot say that its process was killed, or that its GPUs sit idle.
``trainwatch.system`` finds these facts on this machine; the watcher asks
for them through a ``BoxProbe`` (the files stage may not import ``system``);
``metrics.derive`` turns a run whose writer is gone into ``exited`` and
carries the facts in ``RunStats`` (the JSON fields ``process`` and ``gpus``).
Pure data and pure rules here: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

#: Utilisation under this, for IDLE_S on end, is a GPU doing nothing.
IDLE_UTIL_PCT = 5.0
IDLE_S = 60.0
#: Logged MFU more than this many points above the GPUs' utilisation cannot be
#: right: a GPU busy 30 % of the time cannot run at 55 % of its peak.
MFU_SLACK_PCT = 10.0


@dataclass(frozen=True, slots=True)
class Writer:
    """The process that writes a run's log (with its workers, the processes)."""

    pid: int
    alive: bool
    cmdline: str
    started_at: datetime | None
    #: How it was found, in words: "holds the log open for writing", "prints into tee (PID 12), which writes the log".
    how: str
    #: The processes counted in (a launcher and its workers): PIDs, the writer first; while it
    #: lives, only those still running.
    pids: tuple[int, ...] = ()
    user: str | None = None
    #: All of them together, % of one core (None until two samples were taken).
    cpu_pct: float | None = None
    rss_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Gpu:
    """One GPU that a run's processes compute on, as last sampled."""

    index: int
    name: str
    util_pct: float | None
    mem_used_mib: float | None
    mem_total_mib: float | None
    power_w: float | None
    power_limit_w: float | None
    temp_c: float | None
    #: Memory the run's own processes hold on it.
    run_mem_mib: float | None = None
    #: Recent ``(epoch seconds, util %)`` samples, oldest first: the sparkline and the idle rule.
    util_history: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class BoxFacts:
    """Everything the machine says about one run's log."""

    writer: Writer | None = None
    #: The writer seen earlier is gone: the run exited, unless its log says it finished or failed.
    gone: bool = False
    #: Some process that trainwatch may not look into (another user's) holds the log open for writing.
    hidden: bool = False
    gpus: tuple[Gpu, ...] = ()
    #: GPUs of the run that stopped answering (NVML: "GPU is lost"), by index.
    lost_gpus: tuple[int, ...] = ()


class BoxProbe(Protocol):
    """What the watcher asks of the machine (``trainwatch.system.probe.BoxWatch``). Never raises."""

    def look(self, paths: Collection[str], changed: Collection[str]) -> Mapping[str, BoxFacts]:
        """Facts about the local logs ``paths``, keyed by path (paths without any: absent).

        ``changed``: the logs that grew since the last call; a log without a
        live writer is looked up again only then (and not too often)."""
        ...

    def next_due(self) -> float | None:
        """When (``time.monotonic``) ``look`` has news without any log changing: a sample is due."""
        ...

    def wake_with(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (from any thread) when there is news sooner: a writer ended."""
        ...

    def close(self) -> None:
        """Let go of whatever the probe holds (process handles, NVML)."""
        ...


def exited(facts: BoxFacts | None) -> bool:
    """The writer is gone (whether the run then ``exited`` is the log's to say, ``metrics``)."""
    return facts is not None and facts.gone


def gpu_warnings(facts: BoxFacts | None, running: bool, mfu_now_pct: float | None) -> tuple[str, ...]:
    """Plain-sentence caveats from the run's GPUs: idle while running, MFU beyond utilisation, lost."""
    if facts is None or not (facts.gpus or facts.lost_gpus):
        return ()
    out: list[str] = []
    if facts.lost_gpus:
        lost = ", ".join(str(i) for i in facts.lost_gpus)
        out.append(f"GPU {lost} stopped answering (NVML: GPU is lost)")
    recent = _last_minute(facts.gpus)
    if running and recent is not None and max(recent) < IDLE_UTIL_PCT:
        out.append(f"GPUs idle while the run is running: under {IDLE_UTIL_PCT:g} % utilisation for the last minute")
    if recent is not None and mfu_now_pct is not None:
        busy = sum(recent) / len(recent)
        if mfu_now_pct > busy + MFU_SLACK_PCT:
            out.append(
                f"logged MFU {mfu_now_pct:.1f} % is more than the GPUs' utilisation allows "
                f"(busy {busy:.0f} % of the last minute): the log's FLOP count or peak is off"
            )
    return tuple(out)


def _last_minute(gpus: tuple[Gpu, ...]) -> list[float] | None:
    """Every GPU's utilisation samples of the last ``IDLE_S`` seconds, or
    ``None`` while the samples do not yet span that long."""
    samples = [h for g in gpus for h in g.util_history]
    if not samples:
        return None
    newest = max(t for t, _ in samples)
    if newest - min(t for t, _ in samples) < IDLE_S:
        return None
    return [u for t, u in samples if newest - t <= IDLE_S]


def facts_for(facts: Mapping[str, BoxFacts] | None, path: str) -> BoxFacts | None:
    """``facts[path]``, where there are facts at all."""
    return None if facts is None else facts.get(path)
