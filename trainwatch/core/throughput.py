"""Tokens per iteration and MFU, for ``metrics.derive`` (METRICS.md).

Tokens per optimizer step come from the log's own evidence (cumulative
token counters, or logged tokens/s × step time) where it has any, checked
against what the config says; MFU is the logged one re-expressed against
the GPU's dense peak, or derived from the model's FLOPs per token where the
log has none. Each figure says where it came from (``provenance``) and each
disagreement becomes a warning.
"""

from __future__ import annotations

import math
from statistics import median
from typing import Literal

from trainwatch.core import gpus
from trainwatch.core.state import RunState

#: Config and evidence may disagree this much before we say so.
TOKENS_TOLERANCE = 0.05
#: A logged peak this close to twice the dense peak is the sparsity figure.
SPARSE_RATIO = 2.0
#: How many recent logged steps define "the current rate". Each logged time
#: is one sampled step, so the window must be long enough to average noise,
#: and to ride out a pace that swings and comes back: a Megatron run going
#: 17 s → 19 s → 16.7 s a step was 4.6 % off at half way with 100, 2.8 % with
#: 300 (tests/test_eta_corpus.py; the median error over 23 runs went from
#: 0.51 % to 0.39 %). Hangs and evals are left out before (``_measure_rate``).
RATE_WINDOW = 300


def tokens_per_iter(
    agg: RunState, warnings: list[str], provenance: list[tuple[str, str]]
) -> tuple[int | None, Literal["evidence", "config", "override"] | None]:
    """Tokens one optimizer step consumes, all GPUs together (METRICS.md)."""
    info = agg.info
    config, config_why = _config_tokens(agg)
    evidence, evidence_why = _evidence_tokens(agg)
    if agg.tokens_per_iter_override:
        provenance.append(("tokens/iter", f"{agg.tokens_per_iter_override:,}: --tokens-per-iter"))
        return agg.tokens_per_iter_override, "override"
    if evidence is None:
        if config is not None:
            provenance.append(("tokens/iter", f"{config:,}: {config_why}"))
        return config, "config" if config is not None else None
    if config is not None and abs(config - evidence) <= TOKENS_TOLERANCE * evidence:
        # The evidence confirms the config, whose figure is exact (a rate
        # averaged over steps lands a fraction of a percent off).
        why = f"{config:,}: {config_why}, confirmed by the {evidence_why}"
        evidence = config
    else:
        if info.block_size:  # whole sequences: the rate only approximates it
            evidence = round(evidence / info.block_size) * info.block_size
        why = f"{evidence:,}: {evidence_why}"
        if config is not None:
            warnings.append(
                f"tokens/iter from the log's throughput is {evidence:,.0f}, but the config says {config:,} "
                f"({config_why}); using the log's evidence"
            )
    literal = _literal_per_gpu_reading(agg)
    if literal is not None and literal != evidence:
        why += f"; read as per-GPU accumulation (× {info.world_size} GPUs) the config would say {literal:,}"
    provenance.append(("tokens/iter", why))
    return int(evidence), "evidence"


def _config_tokens(agg: RunState) -> tuple[int | None, str]:
    info = agg.info
    if info.tokens_per_iter:
        return info.tokens_per_iter, "stated by the log"
    if not (info.batch_size and info.block_size):
        return None, ""
    if info.grad_accum_per_gpu and info.world_size:
        accum = info.grad_accum_per_gpu * info.world_size
        how = f"{info.grad_accum_per_gpu} per GPU × {info.world_size} GPUs"
    elif info.grad_accum:
        accum, how = info.grad_accum, "global accumulation"
    else:
        return None, ""
    tokens = info.batch_size * accum * info.block_size
    return tokens, f"{info.batch_size} × {accum} × {info.block_size} ({how})"


def _literal_per_gpu_reading(agg: RunState) -> int | None:
    """What the seed's analysis computed: accumulation × world size again."""
    info = agg.info
    if info.grad_accum_per_gpu or not (info.grad_accum and info.world_size and info.world_size > 1):
        return None
    if not (info.batch_size and info.block_size):
        return None
    return info.batch_size * info.grad_accum * info.world_size * info.block_size


def _evidence_tokens(agg: RunState) -> tuple[float | None, str]:
    """Tokens per step as the log's own counters and rates show them."""
    first, last = agg.seen_first, agg.seen_last
    if first is not None and last is not None and last[0] > first[0] and last[1] > first[1]:
        per = (last[1] - first[1]) / (last[0] - first[0])
        return per, "logged cumulative tokens ÷ iterations"
    scope = agg.info.tokens_per_sec_scope
    gpus_n = agg.info.world_size if scope == "gpu" else 1
    tps = agg.tps
    if scope is None or not gpus_n or tps is None:
        return None, ""
    samples = [
        tps[i] * agg.times[i] / 1000 * gpus_n
        for i in range(max(0, len(agg.iters) - 2 * RATE_WINDOW), len(agg.iters))
        if not (agg.is_eval[i] or agg.is_warmup[i] or math.isnan(tps[i]) or math.isnan(agg.times[i]))
    ]
    if not samples:
        return None, ""
    per_gpu = f"per-GPU tok/s × time × {gpus_n} GPUs" if scope == "gpu" else "logged tok/s × time"
    return median(samples), f"logged {per_gpu}"


# ---------------------------------------------------------------------- MFU


def mfu_against_dense(
    agg: RunState,
    mfu_mean: float | None,
    dense: float | None,
    warnings: list[str],
    provenance: list[tuple[str, str]],
) -> float | None:
    """The logged MFU re-expressed against the GPU's dense peak (audit)."""
    logged_peak = agg.info.mfu_peak_tflops
    if mfu_mean is None or dense is None:
        return None
    if logged_peak is None:
        provenance.append(("MFU", "as logged; the log does not say which peak it divided by"))
        return None
    against_dense = mfu_mean * logged_peak / dense
    gpu = (gpus.lookup(agg.info.gpu) or gpus.GpuPeak(agg.info.gpu or "GPU", dense)).name
    if abs(logged_peak - dense) / dense < 0.02:
        provenance.append(("MFU", f"as logged, against {dense:g} TFLOPS, the dense peak of {gpu}"))
        return against_dense
    kind = "sparse peak" if abs(logged_peak / dense - SPARSE_RATIO) < 0.05 else "not the dense peak"
    warnings.append(
        f"MFU logged against {logged_peak:g} TFLOPS ({kind} of {gpu}); "
        f"against the dense {dense:g} TFLOPS it is {against_dense:.1f} %"
    )
    provenance.append(("MFU", f"logged ÷ {logged_peak:g} TFLOPS; dense peak of {gpu} is {dense:g}"))
    return against_dense


def derived_mfu(
    agg: RunState, tokens_per_sec: float, dense: float | None, provenance: list[tuple[str, str]]
) -> float | None:
    info = agg.info
    if not (info.params and dense):
        return None
    head_dim = info.n_embd // info.n_head if info.n_embd and info.n_head else None
    per_token = gpus.flops_per_token(info.params, info.n_layer, info.n_head, head_dim, info.block_size)
    n_gpus = info.world_size or 1
    mfu = 100 * per_token * tokens_per_sec / (dense * 1e12 * n_gpus)
    provenance.append(
        (
            "MFU",
            f"derived: {per_token / 1e9:.2f} GFLOP/token × {tokens_per_sec:,.0f} tok/s ÷ "
            f"({n_gpus} × {dense:g} TFLOPS dense)",
        )
    )
    return mfu
