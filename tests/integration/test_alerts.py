"""``trainwatch alert`` as a real process posts to a real HTTP receiver on loopback.

apprise's ``json://`` posts reach ``webhook.Receiver`` (http.server in a
thread). The state that says what was sent lives in a temporary
``XDG_STATE_HOME``, so a restart of the process is a real restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from livelogs import append, line, write_log
from webhook import Receiver

from .servers import free_port, listening, stop_process, wait_for

NAN_LINE = "iter 110: loss nan, time 100.00ms, mfu 10.00%\n"


def start(command: list[str], state: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, env=env, start_new_session=True)
    assert proc.stderr is not None
    first = proc.stderr.readline().decode()  # written once the watcher runs
    assert "sending alerts to 1 destination" in first, first
    return proc


def stop(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM, as systemd or ``kill`` would; the process must exit 0 on its own."""
    proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        raise AssertionError("trainwatch alert did not exit on SIGTERM") from None
    rest = proc.stderr.read().decode() if proc.stderr else ""
    assert status == 0, rest
    return rest


def test_alert_sends_one_diverged_and_no_duplicate_after_a_restart(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    a = write_log(runs / "a" / "train.log", 100)
    b = write_log(runs / "b" / "train.log", 100)
    with Receiver() as receiver:
        command = [sys.executable, "-m", "trainwatch", "alert", str(runs), "--notify", receiver.url, "--poll", "0.2"]
        proc = start(command, tmp_path / "state")
        try:
            time.sleep(1.0)  # (the first read: the NaN below is then news to a running run)
            append(a, NAN_LINE)
            assert receiver.wait_for("diverged", 10) < 5
            time.sleep(2.0)  # anything else would come now
            (text,) = receiver.texts()
            assert "diverged at iteration 110, loss nan: loss is nan" in text and str(a) in text
        finally:
            stderr = stop(proc)
        assert "Traceback" not in stderr

        append(b, line(1000))  # run b finishes while nobody watches
        proc = start(command, tmp_path / "state")
        try:
            receiver.wait_for("finished", 10)  # what happened while it was down is sent at the start
            time.sleep(2.0)
            texts = receiver.texts()
            assert len(texts) == 2, texts  # and the divergence is not sent again
            assert sum(" diverged at iteration" in t for t in texts) == 1
            assert "finished at iteration 1,000" in texts[1] and str(b) in texts[1]
        finally:
            stop(proc)


def test_serve_metrics_also_alerts_in_one_process(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    a = write_log(runs / "a" / "train.log", 100)
    port = free_port()
    with Receiver() as receiver:
        command = [sys.executable, "-m", "trainwatch", "serve-metrics", str(runs), "--metrics-port", str(port)]
        proc = subprocess.Popen(
            [*command, "--notify", receiver.url, "--poll", "0.2"],
            stderr=subprocess.PIPE,
            env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
            start_new_session=True,
        )
        try:
            assert proc.stderr is not None
            first = proc.stderr.readline().decode()
            assert f"serving metrics on http://127.0.0.1:{port}" in first and "sending alerts" in first, first
            wait_for(lambda: listening(port), 10, "the metrics endpoint")
            time.sleep(1.0)
            append(a, NAN_LINE)
            receiver.wait_for("diverged", 10)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                metrics = response.read().decode()
            assert 'status="diverged"' in metrics
        finally:
            stop(proc)


def test_alert_without_a_destination_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "trainwatch", "alert", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        # No config anywhere: none named (a named one must exist), none in the
        # config folder or the working folder.
        env={
            **{k: v for k, v in os.environ.items() if k != "TRAINWATCH_CONFIG"},
            "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
        },
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "trainwatch: alert needs somewhere to send: --notify URL, or notify = [...] in the config"
    )
    bad = subprocess.run(
        [sys.executable, "-m", "trainwatch", "alert", str(tmp_path / "runs"), "--notify", "nope://secret-token"],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
        timeout=60,
    )
    assert bad.returncode == 2 and "nope://" in bad.stderr and "secret-token" not in bad.stderr
