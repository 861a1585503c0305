"""ETA quality on the corpus (issue 16, item 10): the ETA made at 50 % of each
run that has a clock, against its real end.

For each run, the records the parser makes are fed up to the first logged
iteration at or past the cut (a live reader at that moment has seen no
more), and the ETA to the run's last iteration is compared with the time
that really remained, read from the raw file by the run's own clock:
timestamps (torchtitan, Megatron-LM core, the seed's JSON), elapsed times
(LLaMA-Factory), or the per-step timer summed (Megatron-DeepSpeed, llm.c:
``elapsed time per iteration``, ``ms``) and Lightning's ``epoch_time``.
The clocks are read here with plain regular expressions, not with
trainwatch's parsers. A run that stopped early (a crash, a copy taken
mid-run) is measured to its last logged iteration, which is then its target.

``python -m pytest tests/test_eta_corpus.py -s`` prints the table.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from trainwatch import parsers
from trainwatch.core import metrics
from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import BulkRecord, Iteration
from trainwatch.parsers.llamafactory import parse_duration

#: METRICS.md: a good ETA made from the first half of a log lands within 5 %.
GOAL = 0.05
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

Clock = dict[int, float]  # iteration -> seconds on the run's clock (epoch seconds or since its start)


@dataclass(frozen=True)
class Case:
    name: str
    path: str  # under the corpus
    clock: Callable[[str], Clock]
    absolute: bool  # the clock is wall time (else the ETA is read without a countdown)
    cut: Callable[[Clock], int] = lambda clock: max(clock) // 2
    target: int | None = None  # --target, for a run that stopped before its own


def _text(corpus: Path, case: Case) -> str:
    return _ANSI.sub("", (corpus / case.path).read_bytes().decode("utf-8", "replace"))


# ------------------------------------------------------------------ clocks


def _stamped(pattern: str, fmt: str) -> Callable[[str], Clock]:
    """Iteration -> its line's timestamp; a restart (steps going back) starts over."""
    regex = re.compile(pattern)

    def clock(text: str) -> Clock:
        out: Clock = {}
        for m in regex.finditer(text):
            step = int(m["step"])
            if out and step <= max(out):
                out = {}
            out[step] = datetime.strptime(m["at"], fmt).timestamp()
        return out

    return clock


def _summed(pattern: str) -> Callable[[str], Clock]:
    """Iteration -> the sum of the per-step times logged up to it (ms; every step logged)."""
    regex = re.compile(pattern)

    def clock(text: str) -> Clock:
        out: Clock = {}
        total = 0.0
        for m in regex.finditer(text):
            step = int(m["step"])
            if out and step <= max(out):
                out, total = {}, 0.0  # the next of several runs in one file
            total += float(m["ms"]) / 1000
            out[step] = total
        return out

    return clock


def _llamafactory(text: str) -> Clock:
    out: Clock = {}
    for line in text.splitlines():
        record = json.loads(line)
        elapsed = parse_duration(record["elapsed_time"])
        if elapsed is not None:
            out.setdefault(record["current_steps"], elapsed)
    return out


def _hms(text: str) -> float:
    """``5:28:49``, ``01:07`` (tqdm) or ``1h 2m 3s``, ``42.37s`` (ms-swift) in seconds."""
    if ":" in text:
        seconds = 0.0
        for part in text.split(":"):
            seconds = seconds * 60 + float(part)
        return seconds
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(float(m[1]) * units[m[2]] for m in re.finditer(r"([0-9.]+)([dhms])", text))


def _elapsed(pattern: str, ms: bool = False) -> Callable[[str], Clock]:
    """Iteration -> the elapsed time printed with it when it first appears."""
    regex = re.compile(pattern)

    def clock(text: str) -> Clock:
        out: Clock = {}
        for m in regex.finditer(text.replace("\r", "\n")):
            out.setdefault(int(m["step"]), float(m["el"]) / 1000 if ms else _hms(m["el"]))
        return out

    return clock


def _tqdm(total: int) -> Callable[[str], Clock]:
    """The Trainer's bar: ``400/1755 [2:27:51<8:06:10, 21.53s/it]`` (not a dataset map's)."""
    return _elapsed(rf"\| *(?P<step>\d+)/{total} \[(?P<el>[0-9:]+)<[^\]\n]*(?:s/it|it/s)\]")


def _lightning(text: str) -> Clock:
    """Each epoch's last step -> the sum of ``epoch_time`` up to it."""
    out: Clock = {}
    total = 0.0
    for m in re.finditer(r"^\d+,([0-9.]+),(\d+),", text, re.M):
        total += float(m[1])
        out[int(m[2])] = total
    return out


TORCHTITAN = _stamped(r"\[titan\] (?P<at>\S+ \S+) - root - INFO - step: +(?P<step>\d+) ", "%Y-%m-%d %H:%M:%S,%f")
CASES = [
    *(
        Case(f"torchtitan {name}", f"torchtitan_stdout/{name}.log", TORCHTITAN, absolute=True)
        for name in (
            "titan_kimi436m_attnres_12500steps_with_validate_ansi",
            "titan_kimi436m_baseline_overnight_mfu_over_100pct_ansi",
            "titan_vlm447m_pp2_tp2_rank4_prefix_500steps_ansi",
        )
    ),
    Case(
        "torchtitan crashed at 8810",
        "torchtitan_stdout/titan_llama3_175m_crashed_traceback_ansi.log",
        TORCHTITAN,
        absolute=True,
        target=8810,
    ),
    Case(
        "megatron core, stopped at 344",
        "megatron_stdout/mcore_llama3_1b_fineweb_srun_prefixed_344of500_inprogress.out",
        _stamped(r"\[(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\] iteration +(?P<step>\d+)/", "%Y-%m-%d %H:%M:%S.%f"),
        absolute=True,
        target=344,
    ),
    *(
        Case(
            f"megatron-ds {name}",
            f"megatron_stdout/{name}.log",
            _summed(r" iteration +(?P<step>\d+)/ *\d+ \|.*?elapsed time per iteration \(ms\): (?P<ms>[0-9.]+)"),
            absolute=False,
        )
        for name in (
            "megads_qwen7b_16ranks_500iters_with_validation",
            "megads_qwen7b_16ranks_500iters_freqscale_interleaved",
            "megads_qwen_tp2pp2dp4_4x50iter_runs_concatenated",  # the last of the four runs
        )
    ),
    *(
        Case(f"llamafactory {name}", f"llamafactory_jsonl/{name}.jsonl", _llamafactory, absolute=False)
        for name in (
            "luojiu7b_cpt_8712steps_trainer_log",
            "mistral7b_translator_sft_8660steps_trainer_log",
            "nsllm_2178steps_10days_trainer_log",
            "sunxiaochuan_predict_only_250steps_trainer_log",
        )
    ),
    Case(
        "lightning epoch_time",
        "lightning_csv/slm_wikitext103_12L_10epochs_140739steps_metrics.csv",
        _lightning,
        absolute=False,
        cut=lambda clock: sorted(clock)[len(clock) // 2 - 1],  # the end of epoch 5 of 10
    ),
    *(
        Case(f"hf console {name}", f"hf_trainer_stdout/{name}", _tqdm(total), absolute=False)
        for name, total in (
            ("trl_sft_qwen3_8b_qlora_nohup_tqdm_1755steps_with_eval_training.log", 1755),
            ("deepspeed_4rank_mobilevlm_pretrain_4361steps_mobivlm.out", 4361),
            ("slurm_job4437_trl_qwen14b_qlora_resumed_from_step200_stderr_tqdm.err", 1500),  # resumed at 200
        )
    ),
    Case(
        "ms-swift 438 steps",
        "swift_jsonl/swift_qwen3_8b_lora_438steps_eval_every100_logging.jsonl",
        _elapsed(r'"global_step/max_steps": "(?P<step>\d+)/\d+".*?"elapsed_time": "(?P<el>[^"]+)"'),
        absolute=False,
    ),
    *(
        Case(
            f"modded-nanogpt {name}",
            f"modded_nanogpt/{name}.txt",
            # train_time is the training time so far (the timer stops for validation)
            _elapsed(r"step:(?P<step>\d+)/\d+ [^\n]*?train_time:(?P<el>\d+)ms", ms=True),
            absolute=False,
        )
        for name in (
            "derivative_gpt2_124m_2x4090_3584steps_train_loss_tokens_vram",
            "fork_medium_track_5820steps_val_loss_only_style",
        )
    ),
    Case(
        "llm.c 124M",
        "llmc_stdout/llmc_gpt2_124M_a100_full_19560steps.log",
        _summed(r"step +(?P<step>\d+)/\d+ \|[^\n]*?\| (?P<ms>[0-9.]+) ms \|"),
        absolute=False,
    ),
]


def _records(corpus: Path, case: Case) -> list[BulkRecord]:
    """What the parser makes of the whole file, in order (LogSource's line split)."""
    path = corpus / case.path
    data = path.read_bytes()
    spec = parsers.detect_head(data[: parsers.SNIFF_BYTES_MORE], path.name)
    assert spec is not None and spec.kind == "lines", case.path
    parser = None
    if spec.sidecar_names is not None and spec.new_line_parser_with_sidecar is not None:
        for name in spec.sidecar_names(path.name):
            if path.with_name(name).is_file():
                parser = spec.new_line_parser_with_sidecar(path.with_name(name).read_text())
                break
    if parser is None:
        assert spec.new_line_parser is not None
        parser = spec.new_line_parser()
    text = data[: data.rfind(b"\n")].decode("utf-8", "replace")
    out: list[BulkRecord] = []
    for line in text.split("\n"):
        out += parser.feed(line.removesuffix("\r"))
    flush = getattr(parser, "flush", None)
    return out + (list(flush()) if flush is not None else [])


@dataclass(frozen=True)
class Measure:
    name: str
    cut: int
    target: int
    eta_s: float | None
    real_s: float

    @property
    def error(self) -> float:
        return abs((self.eta_s or 0.0) - self.real_s) / self.real_s if self.eta_s is not None else float("inf")


def _measure_text(corpus: Path, case: Case) -> Measure:
    clock = case.clock(_text(corpus, case))
    cut, end = case.cut(clock), max(clock)
    records = _records(corpus, case)
    # The last segment (a file of several runs): from the last time iterations went back.
    start, last = 0, -1
    for index, record in enumerate(records):
        if isinstance(record, Iteration):
            if record.iter <= last:
                start = index
            last = record.iter
    stop = next(i for i in range(start, len(records)) if isinstance(records[i], Iteration) and records[i].iter >= cut)
    agg = RunAggregator(target_override=case.target)
    agg.add_all(records[: stop + 1])
    done = records[stop].iter  # type: ignore[union-attr]
    at = clock[done] if done in clock else clock[max(k for k in clock if k <= done)]
    if case.absolute:
        now = datetime.fromtimestamp(at)
    else:  # no wall time to count down from: as of the moment the log says the cut step ended
        now = metrics._last_progress_at(agg, agg.stats(datetime(2030, 1, 1)).rate_s) or datetime(2030, 1, 1)
    stats = agg.stats(now)
    assert stats.status == "running", (case.name, stats.status)
    return Measure(case.name, done, stats.target, stats.eta_s, clock[end] - at)


# ---------------------------------------------------------------- the seed


SEED = "llm_tii_json"


def _seed_cut(doc: dict, cut: int, now: datetime) -> bytes:
    """The document as the logger had written it by ``now``, at iteration ``cut``."""
    partial = {k: v for k, v in doc.items() if k not in ("end_time", "summary")}
    partial["training_iterations"] = [e for e in doc["training_iterations"] if e["iter"] <= cut]
    partial["eval_steps"] = [e for e in doc["eval_steps"] if e["iter"] <= cut]
    partial["checkpoints"] = [c for c in doc["checkpoints"] if datetime.fromisoformat(c["timestamp"]) <= now]
    return json.dumps(partial).encode()


def _measure_seed(corpus: Path, run: str, at: float = 0.5) -> tuple[Measure, list[str]]:
    """At the eval nearest the middle, as of its timestamp; for runs without
    evals (or at a quarter), at the iteration nearest, as of the moment the
    log's own times say it ended (start + Σ time_ms × the steps each logged
    entry stands for). Also what the ETA says of the evals still due."""
    doc = json.loads((corpus / SEED / f"{run}.json").read_bytes())
    target = doc["config"]["max_iters"]
    evals = [e for e in doc["eval_steps"] if 0 < e["iter"] < target]
    if evals and at == 0.5:
        middle = min(evals, key=lambda e: abs(e["iter"] - target / 2))
        cut, now = middle["iter"], datetime.fromisoformat(middle["timestamp"])
    else:
        entries = doc["training_iterations"]
        cut = min((e["iter"] for e in entries), key=lambda k: abs(k - target * at))
        seconds = entries[0]["time_ms"] / 1000
        for prev, entry in itertools.pairwise(entries):
            if entry["iter"] <= cut:
                seconds += entry["time_ms"] / 1000 * (entry["iter"] - prev["iter"])
        now = datetime.fromisoformat(doc["start_time"]) + timedelta(seconds=seconds)
    agg = RunAggregator()
    agg.add_all(parsers.llm_tii_json.parse_document(_seed_cut(doc, cut, now)) or [])
    stats = agg.stats(now)
    assert stats.status == "running" and stats.iter == cut
    real = (datetime.fromisoformat(doc["end_time"]) - now).total_seconds()
    notes = [why for what, why in stats.provenance if what == "ETA"]
    return Measure(f"seed {run}" + (f" at {at:.0%}" if at != 0.5 else ""), cut, target, stats.eta_s, real), notes


SEED_RUNS = [
    "run_20251113_225009",
    "run_20251113_095419",
    "run_20251112_122613",
    "run_20251110_174040",
    "run_20251031_174932",
    "run_20251031_173650",
    "run_20251101_074943",
    "run_20251115_145011",
    "run_20251115_150458",
]


def measure_all(corpus: Path) -> list[Measure]:
    return [_measure_seed(corpus, run)[0] for run in SEED_RUNS] + [_measure_text(corpus, case) for case in CASES]


@pytest.fixture(scope="module")
def measures(corpus: Path) -> dict[str, Measure]:
    found = measure_all(corpus)
    print("\n" + table(found))
    return {m.name: m for m in found}


def table(found: list[Measure]) -> str:
    rows = [f"{'run':<62} {'cut':>13} {'ETA s':>10} {'real s':>10} {'error':>7}"]
    for m in found:
        eta = f"{m.eta_s:,.0f}" if m.eta_s is not None else "—"
        rows.append(f"{m.name[:62]:<62} {m.cut:>6}/{m.target:<6} {eta:>10} {m.real_s:>10,.0f} {m.error:>7.2%}")
    errors = sorted(m.error for m in found)
    rows.append(f"{len(found)} cuts: median {errors[len(errors) // 2]:.2%}, worst {errors[-1]:.2%}")
    return "\n".join(rows)


#: Cuts over the goal, and why no pace estimate can do better.
KNOWN = {
    # Evals at 50 and 100 of 100 steps: the one at 50 (and its checkpoint, 36 s
    # after the eval's timestamp) took 55 s, the one at 100 about 20 s. Half the
    # remaining time is that one eval, priced as the only one seen.
    "seed run_20251031_174932": 0.10,
    # A predict-only run whose steps take 0.6-1 s or 4-7.6 s by turns (the
    # length of what it generates): the first half's mean, 2.33 s, is 6 % under
    # the second's, 2.47 s. Noise, not a pace.
    "llamafactory sunxiaochuan_predict_only_250steps_trainer_log": 0.07,
    # Its last logged moment (49m 19s, at 438/438) comes after a final eval
    # off the every-100 cadence, run once the last step is done: 146 s the ETA
    # (until iteration 438) leaves out. To that step it is 0.3 % off.
    "ms-swift 438 steps": 0.11,
}


@pytest.mark.parametrize("name", [f"seed {run}" for run in SEED_RUNS] + [case.name for case in CASES])
def test_eta_at_half_way_lands_near_the_real_end(measures: dict[str, Measure], name: str) -> None:
    measure = measures[name]
    assert measure.error <= KNOWN.get(name, GOAL), (measure.eta_s, measure.real_s)


@pytest.mark.parametrize("run", SEED_RUNS[:4])
def test_evals_due_but_not_timed_yet_are_estimated(corpus: Path, run: str) -> None:
    """At a quarter of the way no eval is timed yet: the two still due were
    priced at 0 s (the ETA 2.4-4 % short). Now at the log's eval settings
    (``eval_iters`` 50 micro-batches × 2 splits, forward only, against a step's
    48, 16, 32 or 8 per GPU forward and backward), said to be an estimate. The
    checkpoint saved with each (4-6 min here) is not known until one is seen:
    the ETA stays 2-3.5 % short."""
    measure, notes = _measure_seed(corpus, run, at=0.25)
    print(f"{measure.name}: ETA {measure.eta_s:,.0f} s, real {measure.real_s:,.0f} s, {measure.error:.2%}")
    assert measure.cut == 500 and measure.error <= GOAL
    assert notes and "2 eval(s) still due" in notes[0] and "estimated" in notes[0]
