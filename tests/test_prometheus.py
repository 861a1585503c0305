"""The Prometheus exposition: what a scrape says, and the commands that serve it.

(tests/integration/ has a real Prometheus server scrape it.)
"""

from __future__ import annotations

import json
import math
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from livelogs import write_log
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from trainwatch import __version__
from trainwatch.cli import main
from trainwatch.core.names import Names
from trainwatch.core.rows import Snapshot
from trainwatch.ingest.publish import build
from trainwatch.ingest.remote import host_of
from trainwatch.ingest.source import LogSource
from trainwatch.outputs.prometheus import GAUGES, MetricsServer, SnapshotCollector

NOW = datetime(2026, 1, 1, 12, 0, 0)


def snapshot_of(*paths: Path) -> Snapshot:
    sources = []
    for path in paths:
        source = LogSource(path)
        source.refresh()
        sources.append(source)
    return build(sources, Names(), NOW)


def scrape(collector: SnapshotCollector) -> dict[str, list[tuple[dict[str, str], float]]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


def test_each_run_is_labelled_and_every_figure_exported(tmp_path: Path) -> None:
    log = write_log(tmp_path / "a" / "train.log", 50)
    collector = SnapshotCollector(hostname="box")
    collector.publish(snapshot_of(log))
    metrics = scrape(collector)
    labels = {"run": "train", "run_id": "", "path": str(log), "format": "nanogpt_stdout", "host": "box"}
    assert metrics["trainwatch_iteration"] == [(labels, 50.0)]
    assert metrics["trainwatch_target_iterations"] == [(labels, 1000.0)]
    assert metrics["trainwatch_progress_ratio"] == [(labels, 0.05)]
    assert metrics["trainwatch_mfu_ratio"] == [(labels, pytest.approx(0.10))]
    assert metrics["trainwatch_iteration_seconds"] == [(labels, pytest.approx(0.1))]
    assert metrics["trainwatch_runs"] == [({}, 1.0)]
    assert metrics["trainwatch_build_info"] == [({"version": __version__}, 1.0)]
    status = {s["status"]: v for s, v in metrics["trainwatch_run_status"]}
    assert status == {"running": 1.0, "stalled": 0.0, "finished": 0.0, "diverged": 0.0, "failed": 0.0, "exited": 0.0}
    assert set(metrics) >= {f"trainwatch_{name}" for name, _, _ in GAUGES} - {
        "trainwatch_val_loss",  # no eval in this log: no sample, so no family
        "trainwatch_wall_elapsed_seconds",
        "trainwatch_eta_seconds",
        "trainwatch_writer_alive",  # no writer known (tests/system/ has them)
        "trainwatch_writer_cpu_ratio",
        "trainwatch_writer_resident_bytes",
    }


def test_unknown_figures_have_no_sample(tmp_path: Path) -> None:
    snapshot = snapshot_of(write_log(tmp_path / "train.log", 20))
    (row,) = snapshot.rows
    row = replace(row, stats=replace(row.stats, loss=math.nan, eta_s=None, tokens_per_sec=math.inf))
    collector = SnapshotCollector(hostname="box")
    collector.publish(Snapshot(snapshot.generated_at, (row,)))
    metrics = scrape(collector)
    for name in ("trainwatch_loss", "trainwatch_eta_seconds", "trainwatch_tokens_per_second", "trainwatch_val_loss"):
        assert metrics.get(name, []) == []
    assert metrics["trainwatch_iteration"][0][1] == 20.0


def test_runs_that_went_away_leave_no_series(tmp_path: Path) -> None:
    a = write_log(tmp_path / "a" / "train.log", 20)
    b = write_log(tmp_path / "b" / "train.log", 30)
    collector = SnapshotCollector(hostname="box")
    assert scrape(collector)["trainwatch_runs"] == [({}, 0.0)]  # before the first snapshot
    collector.publish(snapshot_of(a, b))
    assert {labels["path"] for labels, _ in scrape(collector)["trainwatch_iteration"]} == {str(a), str(b)}
    collector.publish(snapshot_of(b))
    metrics = scrape(collector)
    assert [labels["path"] for labels, _ in metrics["trainwatch_iteration"]] == [str(b)]
    assert all(labels["path"] == str(b) for labels, _ in metrics["trainwatch_run_status"])


def test_a_remote_run_carries_its_host(tmp_path: Path) -> None:
    snapshot = snapshot_of(write_log(tmp_path / "train.log", 20))
    (row,) = snapshot.rows
    collector = SnapshotCollector(hostname="box")
    path = "me@gpu7:/runs/train.log"
    collector.publish(Snapshot(NOW, (replace(row, path=path, host=host_of(path)),)))
    ((labels, _),) = scrape(collector)["trainwatch_iteration"]
    assert labels["host"] == "gpu7" and labels["path"] == "me@gpu7:/runs/train.log"


def test_server_binds_loopback_and_serves(tmp_path: Path) -> None:
    server = MetricsServer(port=0)
    server.start()
    try:
        server.publish(snapshot_of(write_log(tmp_path / "train.log", 20)))
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url, timeout=5) as response:
            body = response.read().decode()
        assert re.search(r"^trainwatch_iteration\{.*\} 20\.0$", body, re.MULTILINE)
        with pytest.raises(OSError):
            MetricsServer(port=server.port).start()  # in use
    finally:
        server.stop()


def test_port_in_use_is_one_line_and_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_log(tmp_path / "train.log", 20)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for command in ("serve-metrics", "watch"):
            assert main([command, str(tmp_path), "--metrics-port", str(port)]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"cannot serve metrics on 127.0.0.1:{port}" in err
    assert main(["serve-metrics", str(tmp_path / "missing")]) == 1


def test_serve_metrics_runs_until_sigterm_and_exits_0(tmp_path: Path) -> None:
    write_log(tmp_path / "train.log", 20)
    command = [sys.executable, "-m", "trainwatch", "serve-metrics", str(tmp_path), "--metrics-port", "0"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        match = re.search(r"serving metrics on (http://127\.0\.0\.1:\d+/metrics)", first)
        assert match, first
        deadline = time.monotonic() + 10
        while True:
            with urllib.request.urlopen(match[1], timeout=5) as response:
                if b"trainwatch_iteration{" in response.read():
                    break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_grafana_dashboard_uses_only_exported_metrics() -> None:
    path = Path(__file__).resolve().parents[1] / "contrib" / "grafana" / "trainwatch.json"
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    assert {"title", "panels", "schemaVersion", "templating", "uid"} <= set(dashboard)
    exported = {f"trainwatch_{name}" for name, _, _ in GAUGES} | {"trainwatch_runs", "trainwatch_run_status"}
    used: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
            used |= set(re.findall(r"trainwatch_\w+", target["expr"]))
    assert used <= exported
    titles = " ".join(p["title"] for p in dashboard["panels"])
    for title in ("Progress", "Loss", "iteration", "Tokens/s", "MFU", "ETA", "Status"):
        assert title in titles


def test_the_app_serves_metrics_while_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_log(tmp_path / "train.log", 20)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    scraped: list[str] = []

    def fake_run_app(paths: list[Path], **kwargs: Any) -> int:
        """The app's part: start the watcher from the factory, as on_mount does, and scrape while "open"."""
        watcher = kwargs["source_factory"](lambda snapshot: None)
        watcher.start()
        try:
            deadline = time.monotonic() + 10
            while not scraped or "trainwatch_iteration{" not in scraped[-1]:
                assert time.monotonic() < deadline
                time.sleep(0.1)
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    scraped.append(response.read().decode())
        finally:
            watcher.stop()
        return 0

    monkeypatch.setattr("trainwatch.tui.app.run_app", fake_run_app)
    assert main(["watch", str(tmp_path), "--metrics-port", str(port)]) == 0
    assert re.search(r"^trainwatch_iteration\{.*\} 20\.0$", scraped[-1], re.MULTILINE)
    with socket.socket() as again:  # closed with the app
        assert again.connect_ex(("127.0.0.1", port)) != 0
