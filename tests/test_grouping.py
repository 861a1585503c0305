"""Which files are one job (``ingest.grouping``) and how their figures merge (``core.merge``).

Pure: paths in, groups out; records in, one run's figures out. The live
watcher on real folders is ``test_watch_grouping.py``; the snapshot command
and the corpus are ``test_grouping_snapshot.py``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.merge import merge
from trainwatch.core.records import Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.ingest.grouping import GroupRuleError, GroupRules, Groups, rotation_chains

NOW = datetime(2030, 1, 1, 12, 0)
HF_RUN = "runs/Dec05_05-05-28_51bfe24db250"  # TrainingArguments' default logging_dir
EVENTS = "events.out.tfevents.1701752728.51bfe24db250.244.1"


def keys(groups: Groups, *paths: str) -> list[str]:
    return [g.key for g in (groups.group_of(p) for p in paths) if g is not None]


def placed(paths: list[str], rules: GroupRules | None = None) -> Groups:
    groups = Groups(rules)
    for path in paths:
        groups.add(path)
    return groups


def one_group(groups: Groups, paths: list[str]) -> bool:
    return len({id(groups.group_of(p)) for p in paths}) == 1 and None not in (groups.group_of(p) for p in paths)


# ------------------------------------------------------------------ layouts


def test_an_hf_output_folder_is_one_run_whatever_the_order() -> None:
    files = [
        "/o/out/checkpoint-500/trainer_state.json",
        "/o/out/checkpoint-1000/trainer_state.json",
        "/o/out/checkpoint-1000/config.json",
        f"/o/out/{HF_RUN}/{EVENTS}",
        "/o/out/trainer_state.json",
        "/o/out/train.log",
    ]
    for order in (files, files[::-1], files[3:] + files[:3]):
        groups = placed(order)
        assert one_group(groups, files), order
        assert groups.group_of(files[0]).label == "out"  # type: ignore[union-attr]
    assert len(placed(files).groups()) == 1


def test_a_log_in_a_folder_that_becomes_an_output_folder_joins_it_and_keeps_its_row() -> None:
    groups = Groups()
    log = groups.add("/o/out/train.log")
    assert groups.primary(log, {"/o/out/train.log": "lines"}) == "/o/out/train.log"  # shown
    ckpt = groups.add("/o/out/checkpoint-10/trainer_state.json")
    assert ckpt is groups.group_of("/o/out/train.log")
    assert ckpt.primary == "/o/out/train.log"  # the row's identity stays


def test_tensorboard_runs_that_are_not_hf_logging_dirs_stay_apart() -> None:
    groups = placed([f"/tb/runs/exp1/{EVENTS}", f"/tb/runs/exp2/{EVENTS}", f"/tb/runs/exp2/{EVENTS}.2"])
    assert len(groups.groups()) == 2
    assert keys(groups, f"/tb/runs/exp2/{EVENTS}") == ["/tb/runs/exp2"]


def test_event_files_of_one_folder_and_a_log_beside_them_are_one_run() -> None:
    files = ["/t/tb/20260503-0802/events.out.tfevents.1.h.1.0", "/t/tb/20260503-0802/events.out.tfevents.2.h.1.1"]
    log = "/t/tb/20260503-0802/train.log"
    for order in ([*files, log], [log, *files]):
        assert one_group(placed(order), [*files, log])


def test_a_wandb_run_folder_is_one_run() -> None:
    run = "/w/wandb/run-20251015_183235-md4wekyz"
    files = [f"{run}/files/output.log", f"{run}/files/wandb-summary.json", f"{run}/run-md4wekyz.wandb"]
    groups = placed([*files, "/w/wandb/run-20251015_190000-other/files/output.log"])
    assert one_group(groups, files)
    assert len(groups.groups()) == 2
    assert groups.group_of(files[0]).label == "run-20251015_183235-md4wekyz"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("pair", "apart"),
    [
        (["/s/slurm-4437.out", "/s/slurm-4437.err"], "/s/slurm-4438.out"),
        (["/s/scale_instruct_14b_resume_4437.err", "/s/scale_instruct_14b_resume_4437.out"], "/s/other-4437.err"),
        (["/s/job.stdout", "/s/job.stderr"], "/s/job.out"),
    ],
)
def test_a_jobs_stdout_and_stderr_are_one_run(pair: list[str], apart: str) -> None:
    groups = placed([*pair, apart])
    assert one_group(groups, pair)
    assert groups.group_of(apart) is not groups.group_of(pair[0])


def test_plain_logs_are_runs_of_their_own() -> None:
    groups = placed(["/r/a.log", "/r/b.log", "/r/metrics.jsonl", "/r/train.log.1"])
    assert len(groups.groups()) == 4


def test_the_primary_is_the_console_log_then_state_then_events_then_checkpoints_stdout_first() -> None:
    groups = Groups()
    kinds: dict[str, str | None] = {
        "/o/out/checkpoint-500/trainer_state.json": "document",
        f"/o/out/{HF_RUN}/{EVENTS}": "records",
        "/o/out/trainer_state.json": "document",
        "/o/out/job.err": "lines",
        "/o/out/job.out": "lines",
    }
    for path in kinds:
        group = groups.add(path)
    assert groups.primary(group, kinds) == "/o/out/job.out"
    group.primary = None
    del kinds["/o/out/job.out"], kinds["/o/out/job.err"]
    assert groups.primary(group, kinds) == "/o/out/trainer_state.json"
    group.primary = None
    del kinds["/o/out/trainer_state.json"]
    assert groups.primary(group, kinds) == f"/o/out/{HF_RUN}/{EVENTS}"


def test_the_primary_is_kept_when_a_better_file_joins() -> None:
    groups = Groups()
    err = groups.add("/s/x-1.err")
    assert groups.primary(err, {"/s/x-1.err": "lines"}) == "/s/x-1.err"
    out = groups.add("/s/x-1.out")
    assert out is err
    assert groups.primary(out, {"/s/x-1.err": "lines", "/s/x-1.out": "lines"}) == "/s/x-1.err"


def test_a_log_beside_an_output_folder_joins_it_once_it_names_it() -> None:
    groups = placed(["/p/train.out", "/p/outputs/checkpoint-500/trainer_state.json", "/p/other/x.json"])
    assert not groups.claim("/p/train.out", ["other"])  # not a run folder
    assert not groups.claim("/p/train.out", ["/elsewhere/outputs"])  # not beside it
    assert groups.group_of("/p/train.out") is not groups.group_of("/p/outputs/checkpoint-500/trainer_state.json")
    assert groups.claim("/p/train.out", ["outputs"])
    assert one_group(groups, ["/p/train.out", "/p/outputs/checkpoint-500/trainer_state.json"])
    groups.add("/p/train.err")  # the job's stderr, later: it follows its stdout
    assert groups.group_of("/p/train.err") is groups.group_of("/p/train.out")


def test_remote_rotated_copies_join_their_log_in_either_order() -> None:
    for order in (["gpu1:/r/train.log", "gpu1:/r/train.log.1"], ["gpu1:/r/train.log.1", "gpu1:/r/train.log"]):
        groups = placed([*order, "gpu2:/r/train.log"])
        assert one_group(groups, order)
        assert len(groups.groups()) == 2


def test_removing_a_file_forgets_an_empty_group() -> None:
    groups = placed(["/s/a.out", "/s/a.err"])
    groups.remove("/s/a.err")
    groups.remove("/s/a.out")
    assert groups.groups() == []


# ---------------------------------------------------------------- overrides


def test_group_and_split_patterns() -> None:
    rules = GroupRules.from_config(
        [{"paths": ["/scratch/job-*/"]}, {"paths": ["a/train.log", "/b/metrics.jsonl"]}],
        [{"paths": ["*/checkpoint-*/trainer_state.json"]}],
    )
    groups = placed(
        [
            "/scratch/job-1/train.log",
            "/scratch/job-1/sub/metrics.jsonl",
            "/scratch/job-2/train.log",
            "/x/a/train.log",
            "/b/metrics.jsonl",
            "/o/out/checkpoint-5/trainer_state.json",
            "/o/out/checkpoint-9/trainer_state.json",
        ],
        rules,
    )
    assert one_group(groups, ["/scratch/job-1/train.log", "/scratch/job-1/sub/metrics.jsonl"])
    assert groups.group_of("/scratch/job-2/train.log") is not groups.group_of("/scratch/job-1/train.log")
    assert one_group(groups, ["/x/a/train.log", "/b/metrics.jsonl"])
    assert groups.group_of("/o/out/checkpoint-5/trainer_state.json") is not groups.group_of(
        "/o/out/checkpoint-9/trainer_state.json"
    )
    # A split file is no rotated copy to read into its log either.
    assert rotation_chains(["/r/x.log", "/r/x.log.1"], lambda p: 0.0, GroupRules(split=("x.log.1",))) == {}


@pytest.mark.parametrize(
    ("groups", "splits", "says"),
    [
        ({"paths": ["a"]}, None, "[[group]] must be an array of tables"),
        ([{"paths": []}], None, "[[group]] #1: paths must be a non-empty list"),
        ([{"paths": ["a"]}, {"path": ["b"]}], None, "[[group]] #2: unknown key 'path'"),
        (None, [{"paths": [3]}], "[[split]] #1: paths must be a non-empty list"),
        (None, ["x"], "[[split]] #1 must be a table"),
    ],
)
def test_bad_rules_say_which_entry_in_one_line(groups: object, splits: object, says: str) -> None:
    with pytest.raises(GroupRuleError) as caught:
        GroupRules.from_config(groups, splits)
    assert says in str(caught.value) and "\n" not in str(caught.value)


# ----------------------------------------------------------------- rotation


def test_rotated_copies_are_read_oldest_first_while_their_times_agree() -> None:
    times = {"/r/train.log": 30.0, "/r/train.log.1": 20.0, "/r/train.log.2": 10.0, "/r/b.log.1": 5.0}
    assert rotation_chains(list(times), times.get) == {"/r/train.log": ["/r/train.log.2", "/r/train.log.1"]}
    times["/r/train.log.2"] = 25.0  # newer than .1: no copy of it, and nothing older follows
    assert rotation_chains(list(times), times.get) == {"/r/train.log": ["/r/train.log.1"]}
    times["/r/train.log.1"] = 40.0  # a run that found train.log taken
    assert rotation_chains(list(times), times.get) == {}
    events = [f"/t/{EVENTS}", f"/t/{EVENTS}".removesuffix(".1")]
    assert rotation_chains(events, lambda p: 0.0) == {}


# -------------------------------------------------------------------- merge


def stats(records: list[Record], now: datetime = NOW, seen: datetime | None = None) -> RunStats:
    """The figures of a file with these records, last changed at ``seen``."""
    agg = RunAggregator()
    agg.add_all(records)
    if seen is not None:
        agg.observe(seen)
    return agg.stats(now)


def steps(start: int, stop: int, every: int = 10, **fields: object) -> list[Record]:
    return [Iteration(step, **fields) for step in range(start, stop + 1, every)]  # type: ignore[arg-type]


def test_merge_of_one_file_is_that_file() -> None:
    one = stats([RunInfo(target=100), *steps(10, 50, loss=2.0)])
    assert merge([("/a.log", one)], NOW) is one


def test_a_stale_file_never_moves_the_run_back() -> None:
    new = stats([RunInfo(target=1000, start_time=NOW - timedelta(hours=1)), *steps(10, 1000, loss=1.5)])
    old = stats([RunInfo(target=1000), *steps(10, 500, loss=2.5)])
    for members in ([("/o/c-1000", new), ("/o/c-500", old)], [("/o/c-500", old), ("/o/c-1000", new)]):
        run = merge(members, NOW)
        assert (run.iter, run.loss, run.status, run.progress_pct) == (1000, 1.5, "finished", 100.0)
        assert run.logged_iters == 100  # the lead's steps: nothing counted twice


def test_each_figure_from_the_file_that_knows_it() -> None:
    # A job's stderr: the bar's steps, times and target, no loss.
    err = stats([RunInfo(target=1500), *steps(201, 1500, every=1, time_ms=11_000.0)])
    # Its stdout: the dicts' losses at steps of its own count, a total runtime, the config.
    out = stats(
        [
            RunInfo(runtime_s=19_730.0, batch_size=4, gpu="NVIDIA A100-SXM4-40GB"),
            *[Iteration(i, loss=0.05 + i / 1e4) for i in range(1, 66)],
            Outcome("finished", "train() returned"),
        ]
    )
    run = merge([("/s/job.out", out), ("/s/job.err", err)], NOW)
    assert (run.iter, run.target, run.target_source) == (1500, 1500, "log")
    assert run.loss == pytest.approx(0.05 + 65 / 1e4)
    assert run.mean_iter_s == pytest.approx(11.0) and run.rate_source == "logged iteration times"
    assert (run.batch_size, run.gpu) == (4, "NVIDIA A100-SXM4-40GB")
    assert run.status == "finished" and run.eta_s == 0.0
    said = dict(run.provenance)
    assert said["files"] == "2; progress from job.err"
    assert said["loss"] == "from job.out" and said["config"] == "from job.out"
    assert "s/iter" not in said  # the lead's own


def test_the_target_comes_from_a_file_that_states_it() -> None:
    bare = stats([*steps(10, 300, time_ms=100.0)])  # no target: the default 2000
    stated = stats([RunInfo(target=600), *steps(10, 200)])
    run = merge([("/a/x.log", bare), ("/a/trainer_state.json", stated)], NOW)
    assert (run.iter, run.target, run.target_source, run.progress_pct) == (300, 600, "log", 50.0)
    assert dict(run.provenance)["target"] == "600 (from the log); from trainer_state.json"
    assert run.eta_s == pytest.approx(300 * 0.1)


def test_status_merges() -> None:
    lead = stats([RunInfo(target=1000), *steps(10, 500, time_ms=100.0)], seen=NOW - timedelta(hours=1))
    assert lead.status == "stalled"
    writing = stats([*steps(1, 40)], seen=NOW)
    assert writing.status == "running"
    # The lead gone quiet while another of the job's files is written: running.
    assert merge([("/a", lead), ("/b", writing)], NOW).status == "running"
    # A file that ended the run after the lead last changed has the last word.
    ended = stats([*steps(1, 40), Outcome("failed", "Traceback")], seen=NOW)
    run = merge([("/a", lead), ("/b", ended)], NOW)
    assert (run.status, run.eta_s) == ("failed", None)
    # A newest loss that is not finite is divergence, whichever file has it.
    diverged = stats([*steps(1, 40, loss=math.nan)], seen=NOW)
    assert merge([("/a", lead), ("/b", diverged)], NOW).status == "diverged"


def test_times_naive_and_aware_compare() -> None:
    zone = datetime.now().astimezone().tzinfo
    naive = replace(stats([*steps(10, 20)]), started_at=datetime(2029, 12, 30))
    aware = replace(stats([*steps(10, 30)]), started_at=datetime(2029, 12, 31, tzinfo=zone))
    run = merge([("/a", naive), ("/b", aware)], NOW)
    assert run.started_at == datetime(2029, 12, 30) and run.iter == 30
