"""``trainwatch snapshot`` groups a job's files into one run, as the live app does.

Small folders the tests write (nanoGPT's console format and HF's
``trainer_state.json``, formats every checkout reads), then the corpus
folders of issue 15's "Done when", copied to temp folders under the names
their jobs gave them. Facts about the corpus files were checked by hand
(the grep is beside each).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from trainwatch import parsers
from trainwatch.cli import EXIT_OK, EXIT_USAGE, main
from trainwatch.ingest import sshtail

NOW = "2030-01-01T00:00:00"
PREAMBLE = "tokens per iteration will be: 8,192\nmax_iters = {target}\n"


def nanogpt(path: Path, steps: range, target: int = 1000, loss: float = 5.0, mtime: float | None = None) -> Path:
    """A nanoGPT console log (``iter N: loss X, time Yms, mfu Z%``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"iter {s}: loss {loss - s / 1000:.4f}, time 100.00ms, mfu 10.00%\n" for s in steps)
    path.write_text(PREAMBLE.format(target=target) + lines)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def trainer_state(path: Path, step: int, max_steps: int = 1000, every: int = 10) -> Path:
    """A ``trainer_state.json`` as the Trainer writes it at a checkpoint save."""
    path.parent.mkdir(parents=True, exist_ok=True)
    history = [
        {"epoch": s / max_steps, "loss": round(3.0 - s / 1000, 4), "step": s} for s in range(every, step + 1, every)
    ]
    state = {"global_step": step, "max_steps": max_steps, "logging_steps": every, "log_history": history}
    path.write_text(json.dumps(state, indent=2, sort_keys=True))
    return path


def snapshot(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    status = main(["snapshot", *args, "-f", "json", "--now", NOW])
    out = capsys.readouterr().out
    assert status == EXIT_OK, out
    result: dict[str, Any] = json.loads(out)
    return result


def test_a_jobs_out_and_err_are_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = nanogpt(tmp_path / "x-123.out", range(0, 60, 10))
    err = nanogpt(tmp_path / "x-123.err", range(0, 110, 10), loss=4.0)
    nanogpt(tmp_path / "x-124.out", range(0, 30, 10))  # the next job
    runs = snapshot(capsys, str(tmp_path))["runs"]
    assert len(runs) == 2
    (run,) = (r for r in runs if r["path"] == str(out))
    assert run["sources"] == [str(out), str(err)]
    assert (run["run"], run["iter"], run["loss"], run["logged_iters"]) == ("x-123", 100, 3.9, 11)


def test_rotated_copies_at_startup_are_read_first_into_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = nanogpt(tmp_path / "train.log.2", range(0, 30, 10), mtime=1_000)
    mid = nanogpt(tmp_path / "train.log.1", range(30, 60, 10), mtime=2_000)
    log = nanogpt(tmp_path / "train.log", range(60, 90, 10), mtime=3_000)
    (run,) = snapshot(capsys, str(tmp_path))["runs"]
    assert run["path"] == str(log) and run["sources"] == [str(log), str(old), str(mid)]
    assert (run["iter"], run["logged_iters"], run["segments"]) == (80, 9, 1)  # every step once, in order


def test_a_newer_file_named_like_a_rotation_is_a_run_of_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nanogpt(tmp_path / "train.log", range(0, 60, 10), mtime=1_000)
    nanogpt(tmp_path / "train.log.1", range(0, 30, 10), mtime=2_000)  # train.log was taken
    assert len(snapshot(capsys, str(tmp_path))["runs"]) == 2


def test_an_output_folder_is_one_run_at_its_newest_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "outputs"
    for step in (500, 1000, 1500):
        trainer_state(out / f"checkpoint-{step}" / "trainer_state.json", step, max_steps=2000)
    (out / "checkpoint-1500" / "config.json").write_text('{"model_type": "llama"}')
    result = snapshot(capsys, str(tmp_path))
    (run,) = result["runs"]
    assert (run["run"], run["iter"], run["target"], run["loss"]) == ("outputs", 1500, 2000, 1.5)
    # The newest state is the row's file (save_total_limit deletes it last).
    assert run["path"] == str(out / "checkpoint-1500" / "trainer_state.json") and len(run["sources"]) == 3
    assert [u["path"] for u in result["unrecognised"]] == [str(out / "checkpoint-1500" / "config.json")]


def test_a_log_beside_an_output_folder_is_its_own_run_until_it_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer_state(tmp_path / "outputs" / "checkpoint-500" / "trainer_state.json", 500)
    nanogpt(tmp_path / "train.log", range(0, 60, 10))
    assert len(snapshot(capsys, str(tmp_path))["runs"]) == 2


HF_CONSOLE = """\
[INFO|2025-04-29 14:31:39] trainer.py:2414 >> ***** Running training *****

[INFO|2025-04-29 14:31:39] trainer.py:2422 >>   Total optimization steps = 768

[INFO|2025-04-29 16:11:19] trainer.py:3984 >> Saving model checkpoint to outputs/checkpoint-768
"""


@pytest.mark.skipif(parsers.by_format("hf_trainer_stdout") is None, reason="no HF console parser yet")
def test_a_console_log_that_names_the_output_folder_beside_it_is_its_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = trainer_state(tmp_path / "outputs" / "checkpoint-768" / "trainer_state.json", 768, max_steps=768)
    log = tmp_path / "running_log.txt"
    log.write_text(HF_CONSOLE)  # LLaMA-Factory's copy of the Trainer's records
    (run,) = snapshot(capsys, str(tmp_path))["runs"]
    assert run["path"] == str(log) and run["sources"] == [str(log), str(state)]
    assert (run["run"], run["iter"], run["loss"]) == ("outputs", 768, 2.24)  # the state's last loss (step 760)


def test_the_config_splits_and_joins_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nanogpt(tmp_path / "x-1.out", range(0, 60, 10))
    nanogpt(tmp_path / "x-1.err", range(0, 60, 10))
    nanogpt(tmp_path / "a" / "one.log", range(0, 30, 10))
    nanogpt(tmp_path / "a" / "two.log", range(0, 50, 10))
    config = tmp_path / "tw.toml"
    config.write_text('[[split]]\npaths = ["*.err"]\n\n[[group]]\npaths = ["a/"]\n')
    runs = snapshot(capsys, str(tmp_path), "--config", str(config))["runs"]
    assert sorted(r["path"].removeprefix(str(tmp_path)) for r in runs) == ["/a/one.log", "/x-1.err", "/x-1.out"]
    (joined,) = (r for r in runs if r["path"].endswith("one.log"))
    assert (joined["run"], joined["iter"], len(joined["sources"])) == ("a", 40, 2)


@pytest.mark.parametrize(
    "text",
    ["[[group]]\npaths = []\n", '[[split]]\npattern = ["x"]\n', 'group = "x"\n'],
)
def test_a_bad_grouping_config_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    nanogpt(tmp_path / "train.log", range(0, 30, 10))
    config = tmp_path / "tw.toml"
    config.write_text(text)
    assert main(["snapshot", str(tmp_path), "--config", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"trainwatch: config {config}: [[")


# ------------------------------------------------------------------- corpus


def test_corpus_hf_output_folder_with_an_earlier_checkpoint_is_one_run_at_1000(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shutil.copytree(corpus / "tfevents" / "hf_tinyllama_qlora_colab_1000steps", tmp_path / "outputs")
    # The checkpoint the Trainer saved at step 500 (save_steps 500), as it wrote it then.
    state = json.loads((folder / "checkpoint-1000" / "trainer_state.json").read_text())
    state.update(global_step=500, epoch=state["log_history"][499]["epoch"])
    state["log_history"] = [entry for entry in state["log_history"] if entry["step"] <= 500]
    (folder / "checkpoint-500").mkdir()
    (folder / "checkpoint-500" / "trainer_state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    (run,) = snapshot(capsys, str(tmp_path))["runs"]
    # grep '"global_step"\|"max_steps"' checkpoint-1000/trainer_state.json: 1000, 1000;
    # grep -B3 '"step": 1000': "loss": 2.0865.
    assert (run["iter"], run["target"], run["loss"], run["status"]) == (1000, 1000, 2.0865, "finished")
    states = {str(folder / f"checkpoint-{n}" / "trainer_state.json") for n in (500, 1000)}
    assert states <= set(run["sources"])
    if parsers.by_format("tfevents") is not None:
        assert len(run["sources"]) == 3  # and its event file


@pytest.mark.skipif(parsers.by_format("tfevents") is None, reason="no TensorBoard event file parser yet")
def test_corpus_two_event_files_of_one_hf_run_are_one_run(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = corpus / "tfevents" / "hf_qwenvl_lora_autodl_669steps_eval_plus_stalled_second_writer"
    (run,) = snapshot(capsys, str(folder))["runs"]
    # MANIFEST: .0 logs to its train_* summary at step 669; .1, a second Trainer, logged step 10 once.
    assert run["iter"] == 669 and len(run["sources"]) == 2


def test_corpus_wandb_run_folder_is_one_run(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run,) = snapshot(capsys, str(corpus / "wandb_offline"))["runs"]
    # grep -o 'step [0-9]* ([0-9.]*%) | loss: [0-9.]*' files/output.log | tail -1: step 00765 ... loss: 1.366061
    assert run["iter"] == 765 and run["loss"] == pytest.approx(1.366061, abs=1e-4)  # (the JSON may round)
    assert run["run"] == "nanochat d20 mid" or "md4wekyz" in run["run"]


@pytest.mark.skipif(parsers.by_format("hf_trainer_stdout") is None, reason="no HF console parser yet")
def test_corpus_slurm_job_4437_pair_is_one_run(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = corpus / "hf_trainer_stdout"
    # Under the names Slurm gave them (MANIFEST: logs/scale_instruct_14b_resume_4437.out / .err).
    out = tmp_path / "scale_instruct_14b_resume_4437.out"
    err = tmp_path / "scale_instruct_14b_resume_4437.err"
    shutil.copyfile(source / "slurm_job4437_trl_qwen14b_qlora_resumed_from_step200_stdout.out", out)
    shutil.copyfile(source / "slurm_job4437_trl_qwen14b_qlora_resumed_from_step200_stderr_tqdm.err", err)
    (run,) = snapshot(capsys, str(tmp_path))["runs"]
    assert run["path"] == str(out) and run["sources"] == [str(out), str(err)]
    # The .err bar's steps: tr '\r' '\n' < *.err | grep -o '[0-9]*/1500 \[' | tail -1: 1500/1500.
    assert (run["iter"], run["target"]) == (1500, 1500)
    # The .out dicts' losses: grep -o "{'loss'[^}]*}" *.out | tail -1: 'loss': 0.0451;
    # grep -o "eval_loss': [0-9.]*" *.out | tail -1: 0.046588730067014694.
    assert run["loss"] == 0.0451 and run["val_loss"] == pytest.approx(0.0466, abs=1e-4)
    assert run["status"] == "finished"


# ------------------------------------------------------------------- remote


@pytest.fixture
def fake_ssh(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``ssh`` that runs the script on this machine, whatever the host (as in test_remote)."""
    script = tmp_path_factory.mktemp("bin") / "fake-ssh"
    script.write_text("#!/bin/sh\nexec sh -s\n")
    script.chmod(0o755)
    monkeypatch.setattr(sshtail, "SSH", str(script))
    monkeypatch.delenv(sshtail.ENV_OPTIONS, raising=False)
    return script


def test_remote_hosts_group_as_local_folders(
    tmp_path: Path, fake_ssh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = nanogpt(tmp_path / "job" / "x-7.out", range(0, 60, 10))
    nanogpt(tmp_path / "job" / "x-7.err", range(0, 110, 10), loss=4.0)
    for step in (100, 200):
        trainer_state(tmp_path / "outputs" / f"checkpoint-{step}" / "trainer_state.json", step)
    nanogpt(tmp_path / "logs" / "train.log.1", range(0, 30, 10), mtime=1_000)
    nanogpt(tmp_path / "logs" / "train.log", range(30, 60, 10), mtime=2_000)
    local = {r["path"]: r for r in snapshot(capsys, str(tmp_path))["runs"]}
    far = {r["path"]: r for r in snapshot(capsys, f"me@fake:{tmp_path}")["runs"]}
    assert len(far) == len(local) == 3
    job = far[f"me@fake:{out}"]
    assert (job["iter"], len(job["sources"]), job["run"]) == (100, 2, "x-7")
    (state,) = (r for r in far.values() if r["run"] == "outputs")
    assert (state["iter"], len(state["sources"])) == (200, 2)
    # Over ssh a rotated copy comes file by file: it joins its log's run (its figures are the log's).
    (log,) = (r for r in far.values() if r["path"].endswith("train.log"))
    assert (log["iter"], len(log["sources"])) == (50, 2)
