"""METRICS.md's table for the four seed runs, checked against hand-computed values.

Every expected number below was computed by hand from the raw JSON files (see
each comment), not taken from trainwatch's output:
- tokens/iter = batch_size × gradient_accumulation_steps × block_size, where
  the accumulation is global (the training script divides it by world size);
  confirmed by the logged per-GPU tokens_per_sec × time_ms × 2 GPUs.
- training time = Σ time_ms over logged iterations except 1000 and 2000
  (eval_interval = 1000, eval_at_start = false): 199 of 201 entries.
- MFU mean = mean of mfu.mfu_percent over those 199, skipping iter 0's -100.
- tokens/hour = tokens/iter × 3600 / (training time / 199).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainwatch.cli import main

SEED_RUNS = {
    # run id: (eff. batch, tokens/iter, training time s, non-eval logged, MFU %, tokens/hour M)
    # 2×96×2048; Σ time_ms = 5,607,505 ms; MFU Σ/198 = 27.62; 393216×3600/(5607.5/199) = 50.2M
    "run_20251113_225009": (192, 393_216, 5607.5, 199, 27.62, 50.2),
    # 4×32×2048; Σ = 2,388,753 ms (0h 39m)
    "run_20251113_095419": (128, 262_144, 2388.8, 199, 30.57, 78.6),
    # 2×64×2048; Σ = 5,075,505 ms (1h 24m)
    "run_20251112_122613": (128, 262_144, 5075.5, 199, 24.61, 37.0),
    # 5×16×2048; Σ = 1,557,953 ms (0h 25m)
    "run_20251110_174040": (80, 163_840, 1558.0, 199, 30.19, 75.3),
}


@pytest.fixture(scope="module")
def snapshot_json(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("snap") / "snap.json"
    assert main(["snapshot", str(corpus / "llm_tii_json"), "--format", "json", "-o", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    return {run["run_id"]: run for run in runs}


def test_all_nine_seed_files_load(snapshot_json: dict[str, dict]) -> None:
    assert len(snapshot_json) == 9
    assert {run["format"] for run in snapshot_json.values()} == {"llm_tii_json"}


@pytest.mark.parametrize("run_id", SEED_RUNS)
def test_metrics_table(snapshot_json: dict[str, dict], run_id: str) -> None:
    batch, tokens, train_s, non_eval, mfu, tok_h = SEED_RUNS[run_id]
    run = snapshot_json[run_id]
    assert run["effective_batch"] == batch
    assert run["tokens_per_iter"] == tokens
    assert run["tokens_per_iter_source"] == "evidence"
    assert round(run["train_time_logged_s"]) == round(train_s)
    assert run["logged_iters"] - run["eval_iters"] == non_eval
    assert run["eval_iters"] == 2
    assert round(run["mfu_mean_pct"], 2) == mfu  # JSON keeps full precision; the hand figure has 2 decimals
    assert round(run["tokens_per_hour"] / 1e6, 1) == tok_h
    assert run["status"] == "finished"
    assert (run["iter"], run["target"], run["progress_pct"]) == (2000, 2000, 100.0)
    assert run["world_size"] == 2
    assert run["gpu"] == "NVIDIA RTX A6000"


def test_qwen_details(snapshot_json: dict[str, dict]) -> None:
    run = snapshot_json["run_20251113_225009"]
    # start 22:50:09.271150, end 14:34:25.025009 next day = 56,655.75 s (15h 44m)
    assert run["wall_elapsed_s"] == pytest.approx(56655.753859)
    assert run["started_at"] == "2025-11-13T22:50:09"
    assert run["finish_at"] == "2025-11-14T14:34:25"
    # last logged loss 1.8775582909584045; eval at 2000: val_loss 2.015394926071167,
    # exported as the log printed them (JSON never rounds)
    assert (run["loss"], run["val_loss"]) == (1.8775582909584045, 2.015394926071167)
    # mfu logged against hardware_peak_tflops 310 (A6000 sparse); dense 154.8: 27.62×310/154.8
    assert round(run["mfu_dense_pct"], 1) == 55.3
    assert any("310 TFLOPS" in w and "sparse" in w and "55.3 %" in w for w in run["warnings"])
    assert run["params"] == 1_829_140_480
    assert run["eta_s"] == 0.0


@pytest.mark.parametrize(
    ("run_id", "eval_iters", "non_eval"),
    [
        # eval_interval 10, no eval_at_start key (stock nanoGPT: evaluates at 0);
        # eval_steps list iters 0 and 10; iteration 10 took 30.1 s vs ~4 s.
        ("run_20251031_173650", 2, 2),
        ("run_20251101_074943", 2, 2),
        # eval_interval 50, log_interval 1: evals at 0, 50, 100 of 101 entries
        ("run_20251031_174932", 3, 98),
        # eval_interval 200 > max_iters 100: no eval among 11 entries
        ("run_20251115_145011", 0, 11),
    ],
)
def test_early_runs_eval_iterations(
    snapshot_json: dict[str, dict], run_id: str, eval_iters: int, non_eval: int
) -> None:
    run = snapshot_json[run_id]
    assert run["eval_iters"] == eval_iters
    assert run["logged_iters"] - run["eval_iters"] == non_eval


def test_early_run_training_time_excludes_eval(snapshot_json: dict[str, dict]) -> None:
    # run_20251031_173650: iters 5 and 15 are the non-eval ones: 4018.37 + 4039.64 ms
    assert snapshot_json["run_20251031_173650"]["train_time_logged_s"] == pytest.approx(8.05801, abs=1e-5)


def test_markdown_has_seed_columns_and_ours(corpus: Path, tmp_path: Path) -> None:
    config = tmp_path / "names.toml"
    config.write_text('[runs.run_20251113_225009]\nname = "Qwen3 1.8B Optimal"\n')
    out = tmp_path / "table.md"
    args = ["snapshot", str(corpus / "llm_tii_json"), "-f", "md", "--config", str(config), "-o", str(out)]
    assert main(args) == 0
    text = out.read_text()
    header = text.splitlines()[0]
    for column in ("Model", "Batch Size (per GPU)", "Gradient Accumulation", "GPUs", "Effective Batch Size"):
        assert column in header
    for column in ("Tokens per Iteration", "Training Time", "Tokens/hour", "MFU", "ETA", "Status"):
        assert column in header
    qwen = next(line for line in text.splitlines() if "Qwen3 1.8B Optimal" in line)
    assert "393,216" in qwen and "1h 33m (199 iters)" in qwen and "50.2M" in qwen and "27.62%" in qwen


# METRICS.md, training time (whole run). By hand from the raw files: each logged
# non-eval entry stands for the steps since the previous logged one (iter 0: 1
# step, the others 10), Σ time_ms × gap; the two eval entries (1000, 2000) stand
# for 10 steps each at the median step time (the median of the 198 entries
# between warm-up and the end, evals left out):
#   Qwen3:  Σ = 55,472 s; median 27.7098 s; 55,472 + 20 × 27.71 = 56,026 s
#   GPT-2:  Σ = 23,574 s; median 11.8473 s; 23,574 + 20 × 11.85 = 23,811 s
#   LLaMA3: Σ = 50,529 s; median 25.4084 s; 50,529 + 20 × 25.41 = 51,038 s
#   LLaMA2: Σ = 15,259 s; median  7.6891 s; 15,259 + 20 ×  7.69 = 15,413 s
# (trainwatch takes the median of the last 16 steps, hence "within 1 %").
WHOLE_RUN_S = {
    "run_20251113_225009": 56_026,
    "run_20251113_095419": 23_811,
    "run_20251112_122613": 51_038,
    "run_20251110_174040": 15_413,
}


@pytest.mark.parametrize("run_id", WHOLE_RUN_S)
def test_whole_run_training_time(snapshot_json: dict[str, dict], run_id: str) -> None:
    run = snapshot_json[run_id]
    assert run["train_time_s"] == pytest.approx(WHOLE_RUN_S[run_id], rel=0.01)
    assert run["train_time_estimated"] is True  # one step in ten is logged
    assert run["hangs"] == []
    # The seed's own column stays beside it: the logged sum, ten times smaller.
    assert run["train_time_logged_s"] < run["train_time_s"] / 9


def test_table_shows_the_whole_run_and_md_the_seed_column(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "table.txt"
    assert main(["snapshot", str(corpus / "llm_tii_json" / "run_20251113_225009.json"), "-o", str(out)]) == 0
    assert "15h 33m est." in out.read_text() or "15h 34m est." in out.read_text()  # 56,026 s
    md = tmp_path / "table.md"
    assert main(["snapshot", str(corpus / "llm_tii_json" / "run_20251113_225009.json"), "-f", "md", "-o", str(md)]) == 0
    text = md.read_text()
    assert "1h 33m (199 iters)" in text  # the seed's "Training Time": logged iterations only
    assert "15h 3" in text  # ... and the whole run's beside it
