"""Dense peak FLOP/s of common accelerators, and the FLOPs of a token.

MFU is only meaningful against the *dense* tensor-core peak for the dtype the
run trains in. Vendors headline the 2:4-sparsity figure (twice the dense one),
and training scripts often divide by it: the seed's logs used 310 TFLOPS for
an RTX A6000, whose dense BF16 peak is 154.8. Figures are NVIDIA's and AMD's
datasheet numbers for BF16/FP16 tensor math with FP32 accumulate.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuPeak:
    """Datasheet peaks of one accelerator, in TFLOP/s per device."""

    name: str
    bf16: float  # BF16 (or FP16 where the chip has no BF16) tensor peak
    tf32: float | None = None
    has_bf16: bool = True


# Matched by substring against the logged GPU name, most specific first
# ("A100" must not catch "A10", "H100 PCIe" before "H100").
_PEAKS: tuple[tuple[str, GpuPeak], ...] = (
    ("GH200", GpuPeak("GH200", 989.4, 494.7)),
    ("H200", GpuPeak("H200", 989.4, 494.7)),
    ("H100 PCIE", GpuPeak("H100 PCIe", 756.5, 378.0)),
    ("H100 NVL", GpuPeak("H100 NVL", 835.5, 417.5)),
    ("H100", GpuPeak("H100 SXM", 989.4, 494.7)),
    ("H800", GpuPeak("H800", 989.4, 494.7)),
    ("H20", GpuPeak("H20", 148.0, 74.0)),
    ("B200", GpuPeak("B200", 2250.0, 1100.0)),
    ("B100", GpuPeak("B100", 1750.0, 875.0)),
    ("A100", GpuPeak("A100", 312.0, 156.0)),
    ("A800", GpuPeak("A800", 312.0, 156.0)),
    ("A6000", GpuPeak("RTX A6000", 154.8, 77.4)),
    ("A5000", GpuPeak("RTX A5000", 111.1, 55.6)),
    ("A40", GpuPeak("A40", 149.7, 74.8)),
    ("A30", GpuPeak("A30", 165.0, 82.0)),
    ("A10G", GpuPeak("A10G", 70.0, 35.0)),
    ("A10", GpuPeak("A10", 125.0, 62.5)),
    ("L40S", GpuPeak("L40S", 362.1, 183.0)),
    ("L40", GpuPeak("L40", 181.0, 90.5)),
    ("L4", GpuPeak("L4", 121.0, 60.0)),
    ("5090", GpuPeak("RTX 5090", 209.5, 104.8)),
    ("4090", GpuPeak("RTX 4090", 165.2, 82.6)),
    ("3090", GpuPeak("RTX 3090", 71.0, 35.6)),
    ("V100", GpuPeak("V100", 125.0, None, has_bf16=False)),
    ("T4", GpuPeak("T4", 65.0, None, has_bf16=False)),
    ("MI300X", GpuPeak("MI300X", 1307.4, 653.7)),
    ("MI250X", GpuPeak("MI250X", 383.0, 95.7)),
    ("MI250", GpuPeak("MI250", 362.1, 90.5)),
)


def lookup(gpu_name: str | None) -> GpuPeak | None:
    """The datasheet entry for a logged GPU name, or ``None`` if unknown."""
    if not gpu_name:
        return None
    upper = gpu_name.upper()
    for key, peak in _PEAKS:
        if key in upper:
            return peak
    return None


def dense_peak_tflops(gpu_name: str | None, dtype: str | None) -> float | None:
    """Dense tensor peak per device for the training dtype, if known."""
    peak = lookup(gpu_name)
    if peak is None:
        return None
    kind = (dtype or "bf16").lower()
    if "bf16" in kind or "bfloat16" in kind:
        # Pre-Ampere chips run bf16 without tensor cores: no meaningful peak.
        return peak.bf16 if peak.has_bf16 else None
    if any(k in kind for k in ("fp16", "float16", "half")):
        return peak.bf16
    if any(k in kind for k in ("tf32", "fp32", "float32")):
        return peak.tf32
    return None


def flops_per_token(
    params: int, n_layer: int | None, n_head: int | None, head_dim: int | None, seq_len: int | None
) -> float:
    """Training FLOPs per token: 6N + 12·L·H·Q·T (PaLM appendix B).

    The attention term is dropped where the architecture is unknown; that
    understates FLOPs (and so MFU) by a few percent for long sequences.
    """
    attention = 0.0
    if n_layer and n_head and head_dim and seq_len:
        attention = 12.0 * n_layer * n_head * head_dim * seq_len
    return 6.0 * params + attention
