"""lightning_csv: PyTorch Lightning CSVLogger metrics.csv (+ hparams.yaml)."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Eval, Iteration, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import detect, lightning_csv

NOW = datetime(2030, 1, 1)
FULL = "slm_wikitext103_12L_10epochs_140739steps_metrics.csv"
PARTIAL = "slm_wikitext103_partial_32049steps_stepcols_only_metrics.csv"
HPARAMS = "slm_wikitext103_12L_10epochs_hparams.yaml"


def _feed(lines: list[str], hparams: RunInfo | None = None) -> list[Record]:
    parser = lightning_csv.LightningCsvParser(hparams)
    # The tailer removes "\n" and a "\r" before it; do the same.
    return [record for line in lines for record in parser.feed(line.removesuffix("\r"))]


def _stats(records: list[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def _corpus_records(corpus: Path, name: str, with_hparams: bool) -> list[Record]:
    folder = corpus / "lightning_csv"
    hparams = lightning_csv.parse_hparams((folder / HPARAMS).read_text()) if with_hparams else None
    data = (folder / name).read_bytes()
    assert b"\r\n" in data  # the MANIFEST's CRLF oddity
    return _feed(data.decode().split("\n"), hparams)


def test_full_run_with_sidecar(corpus: Path) -> None:
    path = corpus / "lightning_csv" / FULL
    spec = detect(path.read_bytes()[:16384], path.name)
    assert spec is not None and spec.format == "lightning_csv"
    # The loader finds the corpus sidecar under one of the candidate names.
    assert HPARAMS in lightning_csv.sidecar_names(FULL)
    st = _stats(_corpus_records(corpus, FULL, with_hparams=True))
    # tail -1: "9,2419.6,140739,...": the step as printed (0-based: 140740 steps done).
    assert st.iter == 140739
    # The epoch-0 end row says step 14073 (14074 steps); hparams: num_epochs: 10;
    # the last step prints 14074 × 10 - 1 = 140739.
    assert st.target == 140739 and st.target_source == "log"
    assert st.status == "finished"
    # tail -3 | head -1: "9,,140699,,,3.565943479537964,..." (train_loss_step)
    assert st.loss == pytest.approx(3.565943479537964)
    # tail -2 | head -1: val_loss column = 3.570486068725586
    assert st.val_loss == pytest.approx(3.570486068725586)
    assert st.segments == 1
    # hparams.yaml: num_layers: 12, d_model: 768, max_seq_len: 128
    assert (st.n_layer, st.n_embd, st.block_size) == (12, 768, 128)


def test_full_run_records(corpus: Path) -> None:
    records = _corpus_records(corpus, FULL, with_hparams=False)
    evals = [r for r in records if isinstance(r, Eval)]
    # awk: 10 rows with a val_loss (one per epoch), the first at step 14073.
    assert len(evals) == 10
    assert evals[0].iter == 14073 and evals[0].val_loss == pytest.approx(4.132571697235107)
    assert evals[0].metrics["val_perplexity"] == pytest.approx(63.93129348754883)
    # Without hparams, the number of epochs (hence the target) is unknown.
    assert not any(isinstance(r, RunInfo) and r.target for r in records)
    # head: the first data row "0,,49,,,7.628580570220947,..."
    first = next(r for r in records if isinstance(r, Iteration))
    assert (first.iter, first.loss) == (49, pytest.approx(7.628580570220947))


def test_partial_run(corpus: Path) -> None:
    records = _corpus_records(corpus, PARTIAL, with_hparams=False)
    st = _stats(records)
    # tail -1: "0,32049,5.512516975402832,247.77398681640625"
    assert st.iter == 32049
    assert st.loss == pytest.approx(5.512516975402832)
    assert st.val_loss is None  # only epoch, step, train_loss_step, train_perplexity_step
    assert st.segments == 1
    assert st.target_source == "default"  # no sidecar, no max_steps


def test_partial_run_is_not_finished(corpus: Path) -> None:
    assert _stats(_corpus_records(corpus, PARTIAL, with_hparams=False)).status != "finished"


def test_parse_hparams() -> None:
    info = lightning_csv.parse_hparams(
        "d_model: 768\r\nlr: 0.00023\nmax_steps: 5000\nname: 'gpt small'\nprecision: bf16-mixed\n"
        "use_x: true\nnothing: null\nmodel:\n  n_layer: 6\n  n_head: 8\nlist:\n- 1\n- 2\nobj: !!python/object:foo\n"
    )
    assert (info.n_embd, info.target, info.n_layer, info.n_head) == (768, 5000, 6, 8)
    assert info.name == "gpt small" and info.dtype == "bf16-mixed"
    assert info.config is not None
    assert info.config["lr"] == pytest.approx(0.00023) and info.config["use_x"] is True
    assert info.config["nothing"] is None and "obj" not in info.config
    assert lightning_csv.parse_hparams("").config is None


def test_sidecar_names() -> None:
    assert lightning_csv.sidecar_names("lightning_logs/version_0/metrics.csv") == ["hparams.yaml"]
    assert lightning_csv.sidecar_names("a_b_metrics.csv") == ["a_b_hparams.yaml", "a_hparams.yaml", "hparams.yaml"]


def test_sparse_rows_nan_and_new_header() -> None:
    lines = [
        "epoch,lr-AdamW,step,train_loss,val_loss\r",
        "0,0.001,9,2.5,\r",
        "0,,9,,2.7\r",  # a val row at the same step: an eval, not a restart
        "0,0.001,19,nan,\r",
        # CSVLogger rewrote the file with a wider header (new metric).
        "epoch,grad_norm,step,train_loss,val_loss",
        "0,1.5,29,2.0,",
        "0,1.5,39",  # cut short: skipped
    ]
    records = _feed(lines)
    its = [r for r in records if isinstance(r, Iteration)]
    assert [i.iter for i in its] == [9, 19, 29]
    assert its[0].lr == 0.001 and its[2].grad_norm == 1.5
    assert its[1].loss is not None and math.isnan(its[1].loss)
    assert [(e.iter, e.val_loss) for e in records if isinstance(e, Eval)] == [(9, 2.7)]
    assert _stats(records).segments == 1


def test_restart_is_a_new_segment() -> None:
    records = _feed(["epoch,step,train_loss", "0,99,2.0", "0,199,1.8", "0,99,1.9"])
    assert _stats(records).segments == 2


def test_sniff() -> None:
    assert lightning_csv.sniff("epoch,step,train_loss_step,train_perplexity_step\r\n0,49,9.7,1.0\r\n", "m.csv")
    assert lightning_csv.sniff("step,loss\n", "metrics.csv")
    assert not lightning_csv.sniff("name,age\nbob,3\n", "people.csv")
    assert not lightning_csv.sniff("step 1, loss 2.0, more words here\n", "x.log")


def test_epoch_time_gives_the_pace_and_the_training_time(corpus: Path) -> None:
    """The corpus run logs ``epoch_time`` (s) on its end-of-epoch rows; without
    it a Lightning run had no s/iter and no ETA at all."""
    st = _stats(_corpus_records(corpus, FULL, with_hparams=True))
    # grep '^[0-9]*,[0-9.]\+,' (the 10 epoch rows): epoch_time 2517.10, 2414.66,
    # 2415.35, 2417.92, 2418.14, 2417.54, 2418.70, 2419.24, 2419.71, 2419.63 s;
    # Σ = 24,177.9 s for 140,740 steps (0-140739), 14,074 an epoch.
    assert st.train_time_s == pytest.approx(24_177.9, rel=1e-3)
    # s/iter: the mean of the epochs' mean steps, (2517.10 + Σ others 21,760.8) / 14,074 / 10
    assert st.mean_iter_s == pytest.approx(24_177.9 / 140_740, rel=0.005)
    assert st.eval_iters == 0  # the epoch's time is taken as training only


def test_epoch_time_rows_time_the_epochs_last_step() -> None:
    lines = [
        "epoch,epoch_time,step,train_loss_step,val_loss",
        "0,,49,3.0,",
        "0,,99,2.9,",
        "0,,99,,2.8",  # the val row at the epoch's last step (0-based step 99: 100 steps)
        "0,50.0,99,,",  # 50 s for 100 steps: 0.5 s a step
        "1,,149,2.7,",
        "1,,199,2.6,",
        "1,40.0,199,,",  # the same step as the last train row: 40 s for steps 100-199
    ]
    parser = lightning_csv.LightningCsvParser()
    records = [r for line in lines for r in parser.feed(line)] + parser.flush()
    its = [(r.iter, r.loss, r.time_ms) for r in records if isinstance(r, Iteration)]
    assert its == [(49, 3.0, None), (99, 2.9, 500.0), (149, 2.7, None), (199, 2.6, 400.0)]
    assert RunInfo(eval_timing="excluded") in records
    # Held back one row: the last one comes with flush, when no epoch row follows.
    parser = lightning_csv.LightningCsvParser()
    assert [r for line in lines[:2] for r in parser.feed(line)] == []
    assert parser.flush() == [Iteration(49, 3.0)]
