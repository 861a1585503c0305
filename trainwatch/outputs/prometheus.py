"""Prometheus exposition: the latest snapshot's runs as gauges.

``trainwatch --metrics-port PORT`` serves while the app is open;
``trainwatch serve-metrics PATH...`` runs the watcher without a UI. A scrape
reads the latest published ``Snapshot`` (``SnapshotCollector``): no file is
read per scrape, a run that went away (its log deleted) has no series any
more, and an unknown figure (``None``, NaN) has no sample rather than a
made-up zero. Label values are valid UTF-8 whatever the file names hold.

Every per-run gauge is labelled ``run`` (display name), ``run_id``, ``path``,
``format`` and ``host`` (this machine, or the remote host of an ssh root).
Percentages are exported as ratios (0–1), times in seconds, as Prometheus
naming asks. Grafana: ``contrib/grafana/trainwatch.json``.
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any, get_args
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from trainwatch import __version__
from trainwatch.core.box import Gpu
from trainwatch.core.fmt import valid_unicode
from trainwatch.core.rows import Snapshot
from trainwatch.core.stats import RunStats, Status

DEFAULT_PORT = 9184
#: Loopback unless the user says otherwise: log paths and run names are not for everyone.
DEFAULT_HOST = "127.0.0.1"
LABELS = ("run", "run_id", "path", "format", "host")
STATUSES: tuple[str, ...] = get_args(Status)


def _ratio(pct: float | None) -> float | None:
    return None if pct is None else pct / 100


def _timestamp(stats: RunStats) -> float | None:
    return stats.last_update_at.timestamp() if stats.last_update_at is not None else None


#: name (after ``trainwatch_``), help, value of one run.
GAUGES: tuple[tuple[str, str, Callable[[RunStats], float | None]], ...] = (
    ("iteration", "Iterations done: the largest iteration logged.", lambda s: s.iter),
    ("target_iterations", "Iterations the run counts progress and ETA to.", lambda s: s.target),
    ("progress_ratio", "Iterations done / target (0-1).", lambda s: _ratio(s.progress_pct)),
    ("loss", "Latest logged training loss.", lambda s: s.loss),
    ("val_loss", "Latest validation loss.", lambda s: s.val_loss),
    ("iteration_seconds", "Mean wall time of one training iteration (evals left out).", lambda s: s.mean_iter_s),
    ("tokens_per_second", "Tokens per second, all GPUs together.", lambda s: s.tokens_per_sec),
    ("tokens_per_hour", "Tokens per hour, all GPUs together.", lambda s: s.tokens_per_hour),
    ("mfu_ratio", "Model FLOPs utilisation, mean over the run (0-1).", lambda s: _ratio(s.mfu_mean_pct)),
    ("eta_seconds", "Estimated seconds until the target iteration.", lambda s: s.eta_s),
    (
        "training_seconds",
        "Training time logged: the sum of per-iteration times, evals left out.",
        lambda s: s.train_time_logged_s,
    ),
    (
        "train_time_seconds",
        "Whole-run training time so far: evals, checkpoints and hangs left out (sampled logs: estimated).",
        lambda s: s.train_time_s,
    ),
    ("wall_elapsed_seconds", "Wall-clock time since the run started.", lambda s: s.wall_elapsed_s),
    ("last_update_timestamp_seconds", "When the run's log last changed (Unix time).", _timestamp),
    (
        "writer_alive",
        "1 while the process writing the run's log lives, 0 once it is gone (no sample: none known).",
        lambda s: None if s.process is None else float(s.process.alive),
    ),
    (
        "writer_cpu_ratio",
        "CPU of the processes writing the log, in cores (1 = one core busy).",
        lambda s: _ratio(s.process.cpu_pct) if s.process is not None else None,
    ),
    (
        "writer_resident_bytes",
        "Resident memory of the processes writing the log.",
        lambda s: s.process.rss_bytes if s.process is not None else None,
    ),
)
#: name (after ``trainwatch_gpu_``), help, value of one GPU of a run; labelled also ``gpu`` (index) and ``gpu_name``.
GPU_GAUGES: tuple[tuple[str, str, Callable[[Gpu], float | None]], ...] = (
    ("utilization_ratio", "GPU utilisation of a run's GPU (0-1): time a kernel ran.", lambda g: _ratio(g.util_pct)),
    ("memory_used_bytes", "Memory used on a run's GPU (all processes).", lambda g: _mib(g.mem_used_mib)),
    ("memory_total_bytes", "Memory of a run's GPU.", lambda g: _mib(g.mem_total_mib)),
    ("run_memory_bytes", "Memory the run's own processes hold on the GPU.", lambda g: _mib(g.run_mem_mib)),
    ("power_watts", "Power draw of a run's GPU.", lambda g: g.power_w),
    ("power_limit_watts", "Enforced power limit of a run's GPU.", lambda g: g.power_limit_w),
    ("temperature_celsius", "Temperature of a run's GPU.", lambda g: g.temp_c),
)
GPU_LABELS = (*LABELS, "gpu", "gpu_name")


def _mib(value: float | None) -> float | None:
    return None if value is None else value * 2**20


class SnapshotCollector(Collector):
    """Gauges from the latest published snapshot; ``publish`` is the watcher's callback."""

    def __init__(self, hostname: str | None = None) -> None:
        self.hostname = hostname or socket.gethostname()
        self._snapshot: Snapshot | None = None

    def publish(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot  # one reference swap: a scrape sees one whole snapshot

    def describe(self) -> Iterable[Metric]:
        return []  # the families depend on the runs: nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        snapshot = self._snapshot
        info = InfoMetricFamily("trainwatch_build", "trainwatch's version.", value={"version": __version__})
        runs = GaugeMetricFamily("trainwatch_runs", "Runs found under the watched paths.")
        unrecognised = GaugeMetricFamily("trainwatch_unrecognised_files", "Files or roots that hold no run (yet).")
        rows = tuple(r for r in snapshot.rows if not r.gone) if snapshot is not None else ()
        runs.add_metric([], len(rows))
        unrecognised.add_metric([], len(snapshot.unrecognised) if snapshot is not None else 0)
        yield from (info, runs, unrecognised)
        if not rows:
            return
        families = [
            (GaugeMetricFamily(f"trainwatch_{name}", text, labels=LABELS), value) for name, text, value in GAUGES
        ]
        status = GaugeMetricFamily(
            "trainwatch_run_status", "1 for the run's status, 0 for the others.", labels=(*LABELS, "status")
        )
        gpu_families = [
            (GaugeMetricFamily(f"trainwatch_gpu_{name}", text, labels=GPU_LABELS), value)
            for name, text, value in GPU_GAUGES
        ]
        for row in rows:
            # A file name that is not UTF-8 made every scrape fail (500) on encoding it.
            labels = [
                valid_unicode(text)
                for text in (row.name, row.stats.run_id or "", row.path, row.format, row.host or self.hostname)
            ]
            for family, value in families:
                number = value(row.stats)
                if number is not None and math.isfinite(number):
                    family.add_metric(labels, float(number))
            for state in STATUSES:
                status.add_metric([*labels, state], 1.0 if row.stats.status == state else 0.0)
            for gpu in row.stats.gpus:
                for family, gpu_value in gpu_families:
                    number = gpu_value(gpu)
                    if number is not None and math.isfinite(number):
                        family.add_metric([*labels, str(gpu.index), gpu.name], float(number))
        yield from (family for family, _ in families)
        yield status
        yield from (family for family, _ in gpu_families if family.samples)


class MetricsServer:
    """The HTTP endpoint (``/metrics``) on its own thread, fed by ``publish``."""

    def __init__(self, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST) -> None:
        self.port, self.host = port, host
        self.collector = SnapshotCollector()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def publish(self, snapshot: Snapshot) -> None:
        self.collector.publish(snapshot)

    def start(self) -> None:
        """Listen now; ``OSError`` (port in use, no such address) is the caller's to report."""
        family, address = _family(self.host, self.port)
        server_class = type("_Server", (_ThreadingServer,), {"address_family": family})
        self._server = make_server(
            address, self.port, make_wsgi_app(self.registry), server_class=server_class, handler_class=_QuietHandler
        )
        self.port = self._server.server_port  # port 0: the one the system chose
        self._thread = threading.Thread(target=self._server.serve_forever, name="trainwatch-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """prometheus_client's ``start_http_server``, with a listen backlog for a
    fleet: its default of 5 left connections of 50 scrapes at once waiting
    for SYN retries, up to a minute (the kernel caps it at ``somaxconn``)."""

    daemon_threads = True
    request_queue_size = 1024


class _QuietHandler(WSGIRequestHandler):
    """No log line per request on stderr; and a client that connects and says
    nothing holds its thread for ``timeout`` seconds, not for ever."""

    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _family(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The address family and address to bind ``host`` with (IPv6 too)."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return family, str(address[0])
