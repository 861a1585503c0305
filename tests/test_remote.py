"""Remote roots without a network: ``ssh`` is replaced by a script that runs
``sh -s`` here, so remote.sh, the framing, the reconnection and the feeding
of ``LogSource`` are all real. (tests/integration/ does it through sshd.)
"""

from __future__ import annotations

import io
import json
import os
import random
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from livelogs import PREAMBLE, Latest, append, line

from trainwatch import parsers
from trainwatch.cli import main
from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.ingest import remote, sshtail
from trainwatch.ingest.discover import discover
from trainwatch.ingest.publish import build
from trainwatch.ingest.remote import RemoteRoot
from trainwatch.ingest.source import LogSource
from trainwatch.ingest.sshtail import Control, Document, Gone, ProtocolError, Tail
from trainwatch.ingest.watcher import Watcher
from trainwatch.outputs.contract import run_record

TIMEOUT = 10.0


@pytest.fixture
def fake_ssh(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``ssh`` that runs the script on this machine, whatever the host."""
    script = tmp_path_factory.mktemp("bin") / "fake-ssh"
    script.write_text("#!/bin/sh\nexec sh -s\n")
    script.chmod(0o755)
    monkeypatch.setattr(sshtail, "SSH", str(script))
    monkeypatch.delenv(sshtail.ENV_OPTIONS, raising=False)
    return script


@pytest.fixture
def follow() -> Iterator[Callable[[list[str]], tuple[Watcher, Latest]]]:
    watchers: list[Watcher] = []

    def start(specs: list[str]) -> tuple[Watcher, Latest]:
        latest = Latest()
        watcher = Watcher([Path(s) for s in specs], RunOptions(), Names(), latest, network_poll=0.1)
        watchers.append(watcher)
        watcher.start()
        return watcher, latest

    yield start
    for watcher in watchers:
        watcher.stop()


def row_of(snapshot: Snapshot, key: str) -> RunRow | None:
    return next((r for r in snapshot.rows if r.key == key), None)


def at(key: str, step: int) -> Callable[[Snapshot], bool]:
    return lambda s: (r := row_of(s, key)) is not None and r.stats.iter == step


# ------------------------------------------------------------------ specs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpu1:/runs", RemoteRoot("gpu1", "/runs")),
        ("me@gpu-1.lab:~/runs", RemoteRoot("me@gpu-1.lab", "~/runs")),
        ("[::1]:/var/log", RemoteRoot("[::1]", "/var/log")),
        ("runs/a:b", None),  # a relative local path with a colon
        ("host:relative", None),  # the path must start with / or ~
        ("-oProxyCommand=x@h:/p", None),  # never an ssh option
        ("/abs/host:/x", None),
    ],
)
def test_parse_root(text: str, expected: RemoteRoot | None) -> None:
    assert remote.parse_root(text) == expected


def test_an_existing_local_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gpu1:").mkdir()
    (tmp_path / "gpu1:" / "runs").mkdir()
    far, local = remote.split_roots([Path("gpu1:/runs"), Path("gpu2:/runs")])
    assert local == [Path("gpu1:/runs")]
    assert far == [RemoteRoot("gpu2", "/runs")]
    assert str(far[0]) == "gpu2:/runs" and far[0].host == "gpu2"


def test_host_of() -> None:
    assert remote.host_of("me@gpu1:/runs/a/train.log") == "gpu1"
    assert remote.host_of("[::1]:/x.log") == "::1"
    assert remote.host_of("/data/runs/train.log") is None


def test_backoff_doubles_to_a_minute_with_jitter() -> None:
    random.seed(7)
    for attempt, base in enumerate([1, 2, 4, 8, 16, 32, 60, 60, 60]):
        delays = [sshtail.backoff(attempt) for _ in range(50)]
        assert all(base / 2 <= d <= base for d in delays)
        assert len(set(delays)) > 1


# --------------------------------------------------------------- protocol


def test_read_frames() -> None:
    stream = io.BytesIO(
        b"Welcome to gpu1!\n"  # a login shell's own print before the script starts
        b"@@trainwatch hello 1 gpu1\n"
        b"@@trainwatch tail 1:2 0 6 1700000000 /r/a b.log\nline\n\n"
        b"@@trainwatch doc 1:3 2 1700000001 /r/s.json\n{}"
        b"@@trainwatch gone /r/old.log\n"
        b"@@trainwatch synced\n"
        b"@@trainwatch tail 1:2 6 100 1700000002 /r/a b.log\ncut"  # the connection dropped mid-frame
    )
    frames = list(sshtail.read_frames(stream))
    assert frames == [
        Control("hello", "1 gpu1"),
        Tail("/r/a b.log", "1:2", 0, b"line\n\n", 1700000000.0),
        Document("/r/s.json", "1:3", 2, "1700000001", b"{}"),
        Gone("/r/old.log"),
        Control("synced"),
    ]
    with pytest.raises(ProtocolError):
        list(sshtail.read_frames(io.BytesIO(b"@@trainwatch hello 1 x\nnoise\n")))
    with pytest.raises(ProtocolError):
        list(sshtail.read_frames(io.BytesIO(b"@@trainwatch tail 1:2 zero 1 1 /x\n")))


def test_remote_listing_follows_discover(tmp_path: Path, fake_ssh: Path) -> None:
    root = tmp_path / "runs"
    names = [
        "a/train.log", "a/out.TXT", "a/metrics.csv", "a/x.2.log", "a/rotated.log.1", "a/slurm-123.out",
        "a/noext", "a/model.pt", "a/weird.1e5", "a/trailing.", "a/.hidden.log", ".cache/c.log",
        "__pycache__/p.log", "b/deep/er/log.jsonl", "b/it's here.log", "b/state.json",
        "tb/events.out.tfevents.1701752728.51bfe24db250.244.1", "tb/events.out.tfevents.1796539254.vm",
        "tb/events.out.tfevents.1600000000.node1.cluster.local", "tb/events.out.tfevents.1600000000.profile-empty",
    ]  # fmt: skip
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x\n")
    os.symlink(root / "a" / "train.log", root / "b" / "link.log")
    sources, problems = remote.load([RemoteRoot("fake", str(root))], RunOptions())
    assert problems == []
    local = {str(p) for p in discover([root])[0]} | {str(root / "b" / "link.log")}
    assert {s.path.as_posix().removeprefix("fake:") for s in sources} == local


def test_many_files_and_odd_names(tmp_path: Path, fake_ssh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sshtail, "STAT_BATCH", 3)  # several stat commands per poll
    names = [f"r{i}.log" for i in range(8)] + ['it\'s "q" $x `y`.log', "sp  ace.log", "-dash.log"]
    for name in names:
        (tmp_path / name).write_text(PREAMBLE + line(len(name)))
    sources, problems = remote.load([RemoteRoot("fake", str(tmp_path))], RunOptions())
    assert problems == []
    assert sorted(s.path.name for s in sources) == sorted(names)
    assert all(s.agg.stats(datetime(2026, 1, 1)).iter == len(s.path.name) for s in sources)


def test_a_new_connection_resumes_where_the_last_ended(tmp_path: Path, fake_ssh: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text(PREAMBLE + line(0))
    doc = tmp_path / "trainer_state.json"
    doc.write_text(json.dumps({"global_step": 10, "log_history": [{"step": 10, "loss": 2.0}]}))
    link = sshtail.HostLink("fake", [str(tmp_path)], lambda: None, interval=0.1, once=True)

    def session() -> list[sshtail.Tail | sshtail.Document | sshtail.Gone]:
        link.start()
        link._thread.join(10)  # type: ignore[union-attr]
        link._thread = None
        frames = []
        while not link.frames.empty():
            frames.append(link.frames.get())
        return frames

    assert {type(f).__name__ for f in session()} == {"Tail", "Document"}
    append(log, line(10))
    (again,) = session()  # the unchanged document is not sent again, the log from its end
    assert isinstance(again, Tail) and again.offset == len(PREAMBLE + line(0)) and again.data == line(10).encode()


def test_missing_root_is_a_problem(tmp_path: Path, fake_ssh: Path) -> None:
    sources, problems = remote.load([RemoteRoot("fake", str(tmp_path / "nope"))], RunOptions())
    assert sources == []
    assert problems == [f"fake:{tmp_path / 'nope'}: no such file or directory"]


def test_a_lightning_log_is_read_with_its_remote_hparams(tmp_path: Path, fake_ssh: Path, corpus: Path) -> None:
    """hparams.yaml is fetched with metrics.csv and read as a local one is; it is no run.

    The corpus names sort the CSV first ("..._140739steps_metrics.csv" before
    "..._hparams.yaml"): the host must still send the sidecar before the log.
    """
    folder = corpus / "lightning_csv"
    csv, yaml = "slm_wikitext103_12L_10epochs_140739steps_metrics.csv", "slm_wikitext103_12L_10epochs_hparams.yaml"
    run = tmp_path / "run"
    run.mkdir()
    for name in (csv, yaml):  # a copy in a temporary folder, read as a remote host's
        (run / name).write_bytes((folder / name).read_bytes())
    sources, problems = remote.load([RemoteRoot("fake", str(tmp_path))], RunOptions())
    assert problems == []
    assert [s.path.name for s in sources] == [csv]
    now = datetime(2026, 1, 1)
    far = sources[0].agg.stats(now)
    # From the yaml ("max_seq_len: 128", "num_layers: 12", "d_model: 768"); the CSV says none of them.
    assert (far.block_size, far.n_layer, far.n_embd) == (128, 12, 768)
    local = LogSource(folder / csv)
    local.refresh()
    near = local.agg.stats(now)
    assert (far.iter, far.loss, far.block_size, far.n_layer) == (near.iter, near.loss, near.block_size, near.n_layer)
    # The CSV named as a root on its own: its folder's sidecar comes with it.
    alone, problems = remote.load([RemoteRoot("fake", str(run / csv))], RunOptions())
    assert problems == [] and [s.path.name for s in alone] == [csv]
    assert alone[0].agg.stats(now).block_size == 128


def test_the_host_sends_a_folders_sidecars_before_its_logs(tmp_path: Path, fake_ssh: Path) -> None:
    """A log's parser is made when its first bytes are read: its hparams.yaml
    must be there by then, whatever the names' sort order."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "0_metrics.csv").write_text("step,loss\n1,2.0\n")
        (tmp_path / folder / "z_hparams.yaml").write_text("max_seq_len: 128\n")
    (tmp_path / "a" / "notes.yaml").write_text("not: a sidecar\n")
    link = sshtail.HostLink("fake", [str(tmp_path)], lambda: None, interval=0.1, once=True)
    link.start()
    link._thread.join(10)  # type: ignore[union-attr]
    frames = []
    while not link.frames.empty():
        frames.append(link.frames.get())
    sent = [(type(f).__name__, os.path.relpath(f.name, tmp_path)) for f in frames]
    sidecars = [("Document", f"{d}/z_hparams.yaml") for d in "ab"]
    logs = [("Tail", f"{d}/0_metrics.csv") for d in "ab"]
    assert sorted(sent) == sorted(sidecars + logs)  # notes.yaml is neither
    assert all(sent.index(sidecar) < sent.index(log) for sidecar, log in zip(sidecars, logs, strict=True))


def test_a_host_that_never_answers_is_a_problem_after_the_timeout(
    tmp_path: Path, fake_ssh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An ssh that connects and then says nothing (a hung NFS mount on the host, say).
    silent = tmp_path / "silent-ssh"
    silent.write_text("#!/bin/sh\nexec sleep 60\n")
    silent.chmod(0o755)
    monkeypatch.setattr(sshtail, "SSH", str(silent))
    sources, problems = remote.load([RemoteRoot("stuck", str(tmp_path))], RunOptions(), timeout=0.5)
    assert sources == []
    assert problems == ["stuck: no answer in 0.5s"]


# ------------------------------------------------------- one parsing core


def _line_logs(corpus: Path) -> Iterator[Path]:
    """The smallest tailed log (line or record log) of each format in the corpus."""
    smallest: dict[str, Path] = {}
    for path in sorted(discover([corpus])[0], key=lambda p: p.stat().st_size):
        with open(path, "rb") as handle:
            spec = parsers.detect_head(handle.read(parsers.SNIFF_BYTES_MORE), path.name)
        if spec is not None and spec.kind != "document":
            smallest.setdefault(spec.format, path)
    yield from smallest.values()


def test_bytes_fed_in_any_chunks_read_like_the_file(corpus: Path) -> None:
    now = datetime(2026, 1, 1)
    rng = random.Random(3)
    checked = 0
    for path in _line_logs(corpus):
        local = LogSource(path)
        local.refresh()
        local.flush()
        data = path.read_bytes()
        fed = LogSource(path)
        offset = 0
        while offset < len(data):
            size = rng.choice([1, 7, 100, 4096]) if offset < 1 << 15 else rng.choice([100, 4096, 1 << 20])
            fed.feed_bytes(data[offset : offset + size], "inode", offset, path.stat().st_mtime)
            offset += size
        fed.flush()
        assert fed.spec == local.spec and fed.offset == len(data)
        assert run_record(build([fed], Names(), now).rows[0]) == run_record(build([local], Names(), now).rows[0])
        checked += 1
    assert checked >= 5


def test_a_document_sent_whole_reads_like_the_file(corpus: Path) -> None:
    now = datetime(2026, 1, 1)
    for path in sorted((corpus / "hf_trainer_state").rglob("*.json"))[:3]:
        local = LogSource(path)
        local.refresh()
        sent = LogSource(path)
        assert sent.replace_document(path.read_bytes(), ("1:2", 10, "1"), path.stat().st_mtime)
        assert not sent.replace_document(path.read_bytes(), ("1:2", 10, "1"))  # same stamp: nothing to do
        assert run_record(build([sent], Names(), now).rows[0]) == run_record(build([local], Names(), now).rows[0])


def test_a_gap_or_an_unknown_format_is_reported() -> None:
    source = LogSource(Path("h:/x.log"))
    assert not source.feed_bytes(b"\x00\x01" * 10, "i", 0)
    assert source.problem == "binary file"
    source = LogSource(Path("h:/y.log"))
    source.feed_bytes(PREAMBLE.encode(), "i", 0)
    with pytest.raises(Exception, match="missing"):
        source.feed_bytes(line(0).encode(), "i", len(PREAMBLE) + 5)


# ---------------------------------------------------------- live following


def test_follows_appends_truncation_rewrites_and_deletion(
    tmp_path: Path,
    fake_ssh: Path,
    follow: Callable[[list[str]], tuple[Watcher, Latest]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sshtail, "RESCAN", 0.5)  # new files are looked for every 10 s by default
    root = tmp_path / "runs"
    log = root / "a" / "train.log"
    log.parent.mkdir(parents=True)
    log.write_text(PREAMBLE + line(0) + line(10))
    state = root / "hf" / "trainer_state.json"
    state.parent.mkdir()
    history = [{"step": 10, "loss": 2.0, "learning_rate": 1e-4}]
    state.write_text(json.dumps({"global_step": 10, "log_history": history, "max_steps": 100}))
    watcher, latest = follow([f"fake:{root}"])
    key, doc_key = f"fake:{log}", f"fake:{state}"
    first = latest.wait(lambda s: at(key, 10)(s) and at(doc_key, 10)(s))
    assert row_of(first, doc_key).format == "hf_trainer_state"  # type: ignore[union-attr]

    append(log, line(20) + line(30)[:9])  # a cut line waits for its end
    latest.wait(at(key, 20))
    append(log, line(30)[9:])
    latest.wait(at(key, 30))

    history.append({"step": 20, "loss": 1.9, "learning_rate": 1e-4})
    state.write_text(json.dumps({"global_step": 20, "log_history": history, "max_steps": 100}, indent=1))
    latest.wait(at(doc_key, 20))

    log.write_text(PREAMBLE + line(0))  # truncated and restarted: a new segment, nothing lost
    restarted = latest.wait(lambda s: (r := row_of(s, key)) is not None and r.stats.segments == 2)
    assert row_of(restarted, key).stats.iter == 0  # type: ignore[union-attr]

    state.unlink()
    gone = latest.wait(lambda s: (r := row_of(s, doc_key)) is not None and bool(r.stats.warnings))
    assert "deleted" in row_of(gone, doc_key).stats.warnings[-1]  # type: ignore[union-attr]
    (root / "b").mkdir()
    append(root / "b" / "new.log", PREAMBLE + line(5))  # found by the next search on the host
    latest.wait(at(f"fake:{root / 'b' / 'new.log'}", 5))
    assert watcher.problems == []


def test_reconnects_and_resumes_without_double_counting(
    tmp_path: Path, fake_ssh: Path, follow: Callable[[list[str]], tuple[Watcher, Latest]]
) -> None:
    log = tmp_path / "train.log"
    log.write_text(PREAMBLE + line(0) + line(10))
    watcher, latest = follow([f"fake:{tmp_path}"])
    key = f"fake:{log}"
    latest.wait(at(key, 10))
    link = watcher._remote.links[0]
    link._kill()  # the connection drops
    down = latest.wait(lambda s: (r := row_of(s, key)) is not None and bool(r.stats.warnings))
    assert "host fake unreachable since" in row_of(down, key).stats.warnings[0]  # type: ignore[union-attr]
    append(log, line(20) + line(30))
    back = latest.wait(lambda s: at(key, 30)(s) and not row_of(s, key).stats.warnings)  # type: ignore[union-attr]
    stats = row_of(back, key).stats  # type: ignore[union-attr]
    assert (stats.logged_iters, stats.segments) == (4, 1)


def test_an_unreachable_host_is_shown_not_frozen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, follow: Callable[[list[str]], tuple[Watcher, Latest]]
) -> None:
    script = tmp_path / "fake-ssh"
    script.write_text("#!/bin/sh\necho 'ssh: connect to host gpu9 port 22: Connection refused' >&2\nexit 255\n")
    script.chmod(0o755)
    monkeypatch.setattr(sshtail, "SSH", str(script))
    log = tmp_path / "local.log"
    log.write_text(PREAMBLE + line(0))
    watcher, latest = follow(["gpu9:/runs", str(log)])
    reason = "host unreachable: ssh: connect to host gpu9 port 22: Connection refused"
    shown = latest.wait(lambda s: ("gpu9:/runs", reason) in s.unrecognised)
    assert [r.key for r in shown.rows] == [str(log)]  # the local run is not held up
    assert watcher.problems == ["gpu9: unreachable (ssh: connect to host gpu9 port 22: Connection refused); retrying"]
    assert "ssh: 0/1 host up" in watcher.mode

    assert main(["snapshot", "gpu9:/runs"]) == 1


def test_snapshot_reads_remote_roots(tmp_path: Path, fake_ssh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "run" / "train.log"
    log.parent.mkdir()
    log.write_text(PREAMBLE + line(0) + line(10))
    assert main(["snapshot", f"me@fake:{tmp_path}", "-f", "json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert run["path"] == f"me@fake:{log}" and run["iter"] == 10 and run["format"] == "nanogpt_stdout"


def test_set_target_reaches_remote_runs(
    tmp_path: Path,
    fake_ssh: Path,
    follow: Callable[[list[str]], tuple[Watcher, Latest]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sshtail, "RESCAN", 0.5)
    log = tmp_path / "train.log"
    log.write_text(PREAMBLE + line(0) + line(10))
    watcher, latest = follow([f"fake:{tmp_path}"])
    key = f"fake:{log}"
    latest.wait(at(key, 10))
    watcher.set_target(40)
    latest.wait(lambda s: (r := row_of(s, key)) is not None and r.stats.target == 40)
    append(tmp_path / "later.log", PREAMBLE + line(0))  # a file found after the change counts to it too
    later = latest.wait(lambda s: row_of(s, f"fake:{tmp_path / 'later.log'}") is not None)
    assert row_of(later, f"fake:{tmp_path / 'later.log'}").stats.target == 40  # type: ignore[union-attr]
