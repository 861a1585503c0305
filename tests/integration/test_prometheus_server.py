"""A real Prometheus scrapes ``trainwatch serve-metrics`` on loopback.

Both servers are started here on free ports; Prometheus scrapes every
second and the test polls its HTTP API until the runs' iterations arrive.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from livelogs import append, line, write_log

from .servers import Prometheus, free_port, listening, stop_process, wait_for


def dashboard_queries() -> list[str]:
    path = Path(__file__).resolve().parents[2] / "contrib" / "grafana" / "trainwatch.json"
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return [q for q in queries if "val_loss" not in q]  # these logs have no eval


def iterations(prometheus: Prometheus) -> dict[str, float]:
    return {r["metric"]["path"]: float(r["value"][1]) for r in prometheus.query("trainwatch_iteration")}


def test_prometheus_scrapes_each_runs_iteration(
    tmp_path: Path, prometheus_factory: Callable[[list[str]], Prometheus]
) -> None:
    runs = tmp_path / "runs"
    a = write_log(runs / "a" / "train.log", 20)
    b = write_log(runs / "b" / "train.log", 50)
    port = free_port()
    command = [sys.executable, "-m", "trainwatch", "serve-metrics", str(runs), "--metrics-port", str(port)]
    server = subprocess.Popen([*command, "--poll", "0.2"], stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: listening(port) or server.poll() is not None, 15, "serve-metrics to listen")
        assert server.poll() is None, server.stderr.read() if server.stderr else ""

        prometheus = prometheus_factory([f"127.0.0.1:{port}"])
        wait_for(lambda: iterations(prometheus) == {str(a): 20.0, str(b): 50.0}, 30, "the first scrape")
        (sample,) = [r for r in prometheus.query("trainwatch_run_status == 1") if r["metric"]["path"] == str(a)]
        assert sample["metric"]["status"] == "running" and sample["metric"]["run"].startswith("train")
        assert sample["metric"]["format"] == "nanogpt_stdout" and sample["metric"]["host"]
        assert prometheus.query("trainwatch_runs")[0]["value"][1] == "2"

        # Every query of the shipped Grafana dashboard is valid PromQL and finds its runs.
        for expr in dashboard_queries():
            assert prometheus.query(expr.replace("$host", ".*").replace("$run", ".*")), expr

        append(a, line(30))
        wait_for(lambda: iterations(prometheus).get(str(a)) == 30.0, 15, "the append to reach Prometheus")

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
        assert server.stderr is not None and b"serving metrics on http://127.0.0.1:" in server.stderr.read()
    finally:
        if server.poll() is None:
            stop_process(server)
