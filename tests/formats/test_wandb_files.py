"""W&B run folders: ``config.yaml``, ``wandb-summary.json`` and
``wandb-metadata.json`` add facts to the console (``files/output.log``) beside them.

The sample files (``wandb_samples``) follow their writers: the Python
client's and wandb-core's config shapes, summaries whose ``_step`` (W&B's row
counter) is not the trainer's step, and the metadata of both clients
(``gpu_devices`` from the Python one, ``gpu_nvidia`` from wandb-core).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from trainwatch.core.options import RunOptions
from trainwatch.core.records import Outcome, RunInfo
from trainwatch.ingest import remote, sshtail
from trainwatch.ingest.discover import discover
from trainwatch.ingest.roots import Roots
from trainwatch.ingest.source import LogSource
from trainwatch.parsers import wandb_files

from .wandb_samples import (
    CONFIG_CORE_021,
    CONFIG_HF_017,
    CONFIG_PY_015,
    MEGATRON_CONFIG,
    METADATA_PY,
    NANOCHAT_CONSOLE,
    NANOGPT_CONSOLE,
    SUMMARY_HF,
    SUMMARY_NANOGPT,
    TORCHTITAN_CONFIG,
    bars,
)

NOW = datetime(2030, 1, 1)
RUN = "run-20231015_183235-abc123xy"


def utc(*parts: int) -> datetime:
    """A UTC wall time as the local time trainwatch shows (the logs' own times are local)."""
    return datetime(*parts, tzinfo=UTC).astimezone().replace(tzinfo=None)  # type: ignore[misc]


def make_run(
    root: Path,
    console: str,
    *,
    config: str | None = None,
    summary: dict[str, object] | None = None,
    metadata: dict[str, object] | None = None,
    run: str = RUN,
) -> Path:
    """A W&B run folder under ``root/wandb``; the path of its ``files/output.log``."""
    files = root / "wandb" / run / "files"
    files.mkdir(parents=True)
    (files / "output.log").write_text(console)
    if config is not None:
        (files / "config.yaml").write_text(config)
    if summary is not None:
        (files / "wandb-summary.json").write_text(json.dumps(summary))
    if metadata is not None:
        (files / "wandb-metadata.json").write_text(json.dumps(metadata, indent=4) + "\n")
    return files / "output.log"


def read(log: Path) -> LogSource:
    source = LogSource(log)
    source.refresh()
    source.flush()
    return source


# ------------------------------------------------------------------ samples


def test_python_client_folder_fills_what_the_nanogpt_console_does_not_say(tmp_path: Path) -> None:
    log = make_run(tmp_path, NANOGPT_CONSOLE, config=CONFIG_PY_015, summary=SUMMARY_NANOGPT, metadata=METADATA_PY)
    source = read(log)
    info, stats = source.agg.info, source.agg.stats(NOW)
    assert source.format == "nanogpt_stdout"
    # The step and the loss are the console's: not the summary's _step (10) nor its train/loss.
    assert (stats.iter, stats.loss) == (100, 3.9)
    assert (stats.target, stats.target_source) == (600000, "log")
    assert (info.batch_size, info.grad_accum, info.grad_accum_per_gpu, info.block_size) == (12, 40, None, 1024)
    assert (info.n_layer, info.n_head, info.n_embd, info.dtype) == (12, 12, 768, "bfloat16")
    assert (info.eval_interval, info.log_interval, info.name) == (1000, 10, "gpt2-124M")
    assert (info.gpu, info.world_size, info.run_id) == ("NVIDIA A100-SXM4-80GB", 4, "abc123xy")
    assert info.start_time == utc(2023, 10, 15, 18, 32, 35)
    assert info.runtime_s == 245.2 and info.final_loss == 3.95  # held, never shown over the console's
    # nanoGPT's count is global: 12 × 40 × 1024 tokens per step.
    assert stats.tokens_per_iter == 491520


def test_wandb_core_folder_its_config_carries_the_metadata_and_the_console_wins(tmp_path: Path) -> None:
    log = make_run(tmp_path, NANOCHAT_CONSOLE, config=CONFIG_CORE_021, run="run-20251015_024018-z9s7cd4f")
    info = read(log).agg.info
    # The console printed 32 x 2048 per rank; the config asked for 16 and 1024: what ran wins.
    assert (info.batch_size, info.block_size, info.grad_accum_per_gpu) == (32, 2048, 1)
    assert (info.target, info.tokens_per_iter, info.n_layer) == (21400, 524288, 20)  # depth 20
    # No wandb-metadata.json: wandb-core's copy under _wandb.value.e says it.
    assert (info.gpu, info.world_size) == ("NVIDIA H100 80GB HBM3", 8)
    assert info.start_time == utc(2025, 10, 15, 2, 40, 18, 123456)
    assert (info.run_id, info.dtype, info.eval_interval) == ("z9s7cd4f", "bfloat16", 250)


def test_hf_folder_summary_gives_the_loss_and_the_end_the_console_lacks(tmp_path: Path) -> None:
    # W&B's copy of the console lost the last frames: the bar stops at 1190.
    log = make_run(tmp_path, bars(1190), config=CONFIG_HF_017, summary=SUMMARY_HF)
    source = read(log)
    info, stats = source.agg.info, source.agg.stats(NOW)
    assert source.format == "hf_trainer_stdout"
    assert (stats.iter, stats.target) == (1190, 1200)  # the bar's, never _step 121
    assert stats.loss == 1.2034 and stats.status == "finished"  # train() returned: train/train_runtime
    assert isinstance(source.agg.outcome, Outcome) and source.agg.outcome.kind == "finished"
    assert info.runtime_s == 3600.5
    # max_steps -1 (epochs decide) states no target; max_length 20 is the model's generation setting.
    assert info.block_size is None
    assert (info.batch_size, info.grad_accum_per_gpu, info.grad_accum) == (4, 8, None)  # HF's is per process
    assert (info.n_layer, info.n_head, info.n_embd, info.params) == (22, 32, 2048, 1100048384)
    assert (info.dtype, info.eval_interval, info.log_interval) == ("bf16", 200, 10)  # bf16, not torch_dtype
    assert info.name is None  # run_name is the output folder: HF's default, no name
    assert info.start_time == datetime.fromtimestamp(1717000000)  # the config's start_time: no metadata file


def test_without_a_summary_the_loss_stays_unknown(tmp_path: Path) -> None:
    stats = read(make_run(tmp_path, bars(1190), config=CONFIG_HF_017)).agg.stats(NOW)
    assert (stats.iter, stats.loss, stats.status) == (1190, None, "stalled")  # (NOW is years later)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MEGATRON_CONFIG,
            # 256 sequences of 1 micro-batch over all data-parallel ranks, as the console parser;
            # eval_iters 0: no evals, whatever eval_interval says.
            {"target": 500, "batch_size": 1, "grad_accum": 256, "block_size": 4096, "world_size": 16,
             "n_layer": 28, "n_embd": 3584, "n_head": 28, "dtype": "bfloat16", "eval_interval": None,
             "log_interval": 1, "name": "qwen7b-baseline"},
        ),
        (
            TORCHTITAN_CONFIG,
            {"target": 3000, "batch_size": 8, "block_size": 8192, "tokens_per_iter": 64 * 8192,
             "dtype": "bfloat16", "log_interval": 10, "grad_accum": None, "grad_accum_per_gpu": None},
        ),
    ],
)  # fmt: skip
def test_trainers_config_shapes(text: str, expected: dict[str, object]) -> None:
    records = wandb_files.parse_config(text)
    assert records is not None
    (info,) = records
    assert isinstance(info, RunInfo)
    assert {key: getattr(info, key) for key in expected} == expected


def test_summary_never_gives_a_step_and_picks_the_trainers_loss() -> None:
    # nanochat logs "step" beside W&B's _step; its train/loss is the smoothed one.
    text = '{"train/loss":1.35,"step":765,"_step":82,"_runtime":559,"val/bpb":0.41,"_timestamp":1.76e9}'
    assert wandb_files.parse_summary(text) == [RunInfo(final_loss=1.35, runtime_s=559.0)]
    # Megatron's key; one loss-like key of the script's own; two such keys: no guess.
    assert wandb_files.parse_summary('{"lm loss": 2.5, "lm loss validation": 2.7}') == [RunInfo(final_loss=2.5)]
    assert wandb_files.parse_summary('{"Loss/train": 0.7, "_step": 3}') == [RunInfo(final_loss=0.7)]
    assert wandb_files.parse_summary('{"loss_a": 1.0, "loss_b": 2.0}') == [RunInfo()]
    assert wandb_files.parse_summary('{"train/loss": 1.') is None  # being rewritten


def test_metadata_of_both_clients() -> None:
    core = {"startedAt": "2025-10-15T18:32:35.487050Z", "gpu_nvidia": [{"name": "NVIDIA L4"}], "gpu_count": 1}
    assert wandb_files.parse_metadata(json.dumps(core)) == [
        RunInfo(gpu="NVIDIA L4", world_size=1, start_time=utc(2025, 10, 15, 18, 32, 35, 487050))
    ]
    legacy = {"startedAt": "2023-10-15T18:32:35", "gpu": "Tesla V100-SXM2-16GB", "gpu_count": 8}
    (info,) = wandb_files.parse_metadata(json.dumps(legacy)) or ()
    assert isinstance(info, RunInfo) and (info.gpu, info.world_size) == ("Tesla V100-SXM2-16GB", 8)
    assert wandb_files.parse_metadata(json.dumps({"os": "Darwin", "cpu_count": 8})) == [RunInfo()]  # no GPU


@pytest.fixture
def tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "JST-9")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("tokyo")
def test_start_time_is_shown_in_local_time() -> None:
    # 18:32:35 UTC is 03:32:35 the next day at UTC+9, as a console's local timestamps would say.
    (info,) = wandb_files.parse_metadata('{"startedAt": "2025-10-15T18:32:35Z"}') or ()
    assert isinstance(info, RunInfo) and info.start_time == datetime(2025, 10, 16, 3, 32, 35)


# ------------------------------------------------------------------ live


def test_live_config_written_after_the_console_started(tmp_path: Path) -> None:
    log = make_run(tmp_path, NANOGPT_CONSOLE)
    files = log.parent
    source = read(log)
    assert (source.agg.stats(NOW).target_source, source.agg.info.block_size) == ("default", None)
    # W&B writes config.yaml once the script's config reaches it; half of it first.
    whole = CONFIG_PY_015
    (files / "config.yaml").write_text(whole[: whole.index("max_iters")] + "max_iters:\n  desc: null\n  value: 60")
    with open(log, "a") as handle:
        handle.write("iter 110: loss 3.8900, time 250.00ms, mfu 30.00%\n")
    assert source.refresh()
    assert source.agg.info.target is None  # cut mid-line: not read until whole
    (files / "config.yaml").write_text(whole)
    assert source.refresh()  # the config alone changed the run
    stats = source.agg.stats(NOW)
    assert (stats.iter, stats.target, source.agg.info.block_size) == (110, 600000, 1024)
    # A changed config corrects what it gave; the summary appears and grows.
    (files / "config.yaml").write_text(whole.replace("value: 600000", "value: 5000"))
    (files / "wandb-summary.json").write_text(json.dumps(SUMMARY_NANOGPT))
    assert source.refresh()
    assert (source.agg.info.target, source.agg.info.runtime_s) == (5000, 245.2)
    (files / "wandb-summary.json").write_text(json.dumps(SUMMARY_NANOGPT | {"_runtime": 300.0}))
    assert source.refresh() and source.agg.info.runtime_s == 300.0
    (files / "wandb-summary.json").write_text('{"_runtime": 31')  # mid-rewrite: the last whole one stands
    assert not source.refresh() and source.agg.info.runtime_s == 300.0
    assert not source.refresh()  # nothing changed: nothing re-read


def test_live_a_fact_the_console_states_stays_the_consoles(tmp_path: Path) -> None:
    config = CONFIG_CORE_021
    log = make_run(tmp_path, "", config=config)
    source = LogSource(log)
    assert not source.refresh()  # an empty console: no format yet, nothing read
    (log).write_text(NANOCHAT_CONSOLE)
    source.refresh()
    assert source.agg.info.batch_size == 32
    (log.parent / "config.yaml").write_text(config.replace("value: 16\n", "value: 8\n"))
    source.refresh()
    assert source.agg.info.batch_size == 32  # the console's, though the config changed


# ------------------------------------------------------------------ discovery


def wandb_tree(root: Path) -> Path:
    """A run folder as W&B leaves it (files, logs, the .wandb, the links in wandb/)."""
    log = make_run(root, NANOGPT_CONSOLE, config=CONFIG_PY_015, summary=SUMMARY_NANOGPT, metadata=METADATA_PY)
    run = log.parent.parent
    for name in ("requirements.txt", "conda-environment.yaml", "diff.patch", "media/table/eval_1_ab12.table.json",
                 "code/train.py", "code/config/train.json", "train_extra.log"):  # fmt: skip
        (log.parent / name).parent.mkdir(parents=True, exist_ok=True)
        (log.parent / name).write_text('{"x": 1}\n')
    (run / "logs").mkdir()
    for name in ("debug.log", "debug-internal.log"):
        (run / "logs" / name).write_text("2025-10-15 18:32:35,000 INFO    MainThread:1 [wandb_init.py:init():1] x\n")
        (run.parent / name).symlink_to(run / "logs" / name)
    (run / f"run-{RUN.rsplit('-', 1)[1]}.wandb").write_bytes(b":W&B\xbe\xe1\x00")
    return log


def test_discovery_takes_the_console_not_wandbs_own_files(tmp_path: Path) -> None:
    log = wandb_tree(tmp_path)
    found, problems = discover([tmp_path])
    # A file the script saved into files/ (wandb.save) is the user's, and stays.
    assert (sorted(found), problems) == (sorted([log, log.parent / "train_extra.log"]), [])
    roots = Roots([tmp_path])
    assert roots.accepts(str(log))
    assert not roots.accepts(str(log.parent / "wandb-summary.json"))
    assert not roots.accepts(str(log.parent.parent / "logs" / "debug-internal.log"))


def test_snapshot_lists_no_wandb_file_as_unrecognised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainwatch.cli import main

    log = wandb_tree(tmp_path)
    (log.parent / "train_extra.log").unlink()
    assert main(["snapshot", str(tmp_path), "-f", "json"]) == 0
    captured = capsys.readouterr()
    (run,) = json.loads(captured.out)["runs"]
    assert (run["path"], run["run_id"], run["gpu"], run["world_size"]) == (str(log), "abc123xy", METADATA_PY["gpu"], 4)
    assert "unrecognised" not in captured.err


@pytest.mark.parametrize(
    ("path", "own"),
    [
        ("/w/wandb/run-20251015_183235-md4wekyz/files/wandb-summary.json", True),
        ("/w/wandb/offline-run-20251015_183235-md4wekyz/files/wandb-metadata.json", True),
        ("/w/wandb/run-20251015_183235-md4wekyz/files/requirements.txt", True),
        ("/w/wandb/run-20251015_183235-md4wekyz/files/media/table/t_1_x.table.json", True),
        ("/w/wandb/run-20251015_183235-md4wekyz/logs/debug-internal.log", True),
        ("/w/wandb/debug.log", True),
        ("/w/wandb/run-20251015_183235-md4wekyz/files/output.log", False),
        ("/w/wandb/run-20251015_183235-md4wekyz/files/train.log", False),
        ("/w/runs/wandb-summary.json", False),  # not in a run folder: whatever it is, it is looked at
        ("/w/logs/debug.log", False),
        ("/w/run-1/files/requirements.txt", False),
    ],
)
def test_own_files(path: str, own: bool) -> None:
    assert wandb_files.is_own_file(path) is own


def test_console_run_id() -> None:
    assert wandb_files.console_run_id("/w/wandb/offline-run-20251015_183235-md4wekyz/files/output.log") == "md4wekyz"
    assert wandb_files.console_run_id("C:\\w\\wandb\\run-20251015_183235-x1\\files\\output.log") == "x1"
    assert wandb_files.console_run_id("/w/wandb/run-20251015_183235-md4wekyz/files/train.log") is None
    assert wandb_files.console_run_id("/w/files/output.log") is None


@pytest.fixture
def fake_ssh(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``ssh`` that runs the script on this machine (as tests/test_remote.py)."""
    script = tmp_path_factory.mktemp("bin") / "fake-ssh"
    script.write_text("#!/bin/sh\nexec sh -s\n")
    script.chmod(0o755)
    monkeypatch.setattr(sshtail, "SSH", str(script))
    monkeypatch.delenv(sshtail.ENV_OPTIONS, raising=False)
    return script


def test_a_remote_run_folder_reads_as_a_local_one(tmp_path: Path, fake_ssh: Path) -> None:
    """The host sends the metadata as sidecars (before the console), and W&B's own files are no runs."""
    log = wandb_tree(tmp_path)
    sources, problems = remote.load([remote.RemoteRoot("fake", str(tmp_path))], RunOptions())
    assert problems == []
    assert sorted(s.path.name for s in sources) == ["output.log", "train_extra.log"]
    far = next(s for s in sources if s.path.name == "output.log")
    near = read(log)
    assert far.agg.info == near.agg.info and far.agg.info.target == 600000
    assert far.agg.info.gpu == METADATA_PY["gpu"]


# ------------------------------------------------------------------ hostile


def test_a_fifo_by_a_metadata_name_never_blocks(tmp_path: Path) -> None:
    log = make_run(tmp_path, NANOGPT_CONSOLE)
    for name in wandb_files.FILES:
        os.mkfifo(log.parent / name)
    done: list[bool] = []
    reader = threading.Thread(target=lambda: done.append(read(log).agg.stats(NOW).iter == 100), daemon=True)
    reader.start()
    reader.join(10)
    assert done == [True]


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(20)
)


@pytest.mark.parametrize(
    "text",
    [
        BOMB,  # aliases: 4^20 leaves if walked naively
        "x:\n  value: " + "[" * 50_000 + "\n",
        "x: {value: " * 2000 + "1" + "}" * 2000 + "\n",
        "- 1\n- 2\n",
        "\x00\xff\ufffd: [\n",
        "max_steps: {value: 1e309}\nbatch_size: {value: -5}\nblock_size: {value: 99999999999999999999999}\n",
        "max_steps: {value: true}\nbf16: {value: yes}\ndtype: {value: [1]}\n_wandb: {value: {e: [1], start_time: x}}\n",
        "!!python/object/apply:os.system ['echo hi']\n",
    ],
)
def test_hostile_configs_never_raise(text: str) -> None:
    started = time.perf_counter()
    records = wandb_files.parse(wandb_files.CONFIG, text)
    assert records is None or all(isinstance(r, RunInfo) for r in records)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("name", [wandb_files.SUMMARY, wandb_files.METADATA])
@pytest.mark.parametrize(
    "text",
    ["", "[]", "null", '{"_runtime": "x", "loss": "nan"}', '{"gpu": 5, "gpu_count": 1e400, "startedAt": 7}',
     '{"train/loss": NaN, "_runtime": Infinity}', '{"startedAt": "9999-12-31T23:59:59Z"}', "[" * 100_000],
)  # fmt: skip
def test_hostile_json_never_raises(name: str, text: str) -> None:
    records = wandb_files.parse(name, text)
    assert records is None or isinstance(records, list)


# ------------------------------------------------------------------ corpus

CORPUS_RUN = "wandb_offline/nanochat_midtrain_d20_8xh100_765steps/wandb/run-20251015_183235-md4wekyz"


def test_corpus_folder(corpus: Path) -> None:
    source = read(corpus / CORPUS_RUN / "files" / "output.log")
    info, stats = source.agg.info, source.agg.stats(NOW)
    # The console's: grep '^step ' output.log | tail -1: "step 00765 (99.33%) | loss: 1.366061";
    # never the summary's "_step":82 nor its smoothed "train/loss":1.3500301955244962.
    assert (stats.iter, stats.target, stats.loss, stats.status) == (765, 765, 1.366061, "finished")
    # grep -A1 gpu wandb-metadata.json: "gpu": "NVIDIA H100 80GB HBM3", "gpu_count": 8
    assert (info.gpu, info.world_size) == ("NVIDIA H100 80GB HBM3", 8)
    # grep startedAt wandb-metadata.json: "2025-10-15T18:32:35.487050Z"
    assert info.start_time == utc(2025, 10, 15, 18, 32, 35, 487050)
    # config.yaml: device_batch_size 32, max_seq_len 2048, eval_every 150, dtype bfloat16,
    # total_batch_size 524288 (also printed: "Tokens / micro-batch / rank: 32 x 2048", "Total batch size 524,288")
    assert (info.batch_size, info.block_size, info.tokens_per_iter) == (32, 2048, 524288)
    assert (info.eval_interval, info.dtype, info.run_id) == (150, "bfloat16", "md4wekyz")
    # grep -o '"_runtime":[0-9]*' wandb-summary.json: 559
    assert info.runtime_s == 559


def test_corpus_snapshot_has_no_unrecognised_wandb_file(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainwatch.cli import main

    assert main(["snapshot", str(corpus / "wandb_offline"), "-f", "json"]) == 0
    captured = capsys.readouterr()
    (run,) = json.loads(captured.out)["runs"]
    assert run["path"].endswith("files/output.log") and "unrecognised" not in captured.err
