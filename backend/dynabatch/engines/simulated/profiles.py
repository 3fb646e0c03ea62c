"""Named GPU x model profiles for the simulated executor.

A profile holds the hardware and model figures the roofline latency model needs, the
four latency constants fitted to published measurements, and those measurements.

Sources
- GPU datasheets: NVIDIA A100 (SXM4 80 GB: 2,039 GB/s; 40 GB: 1,555 GB/s; dense FP16
  tensor 312 TFLOPS), H100 SXM5 (3,350 GB/s; dense FP16 / FP8 tensor 989 / 1,979 TFLOPS)
  and H200 SXM (141 GB HBM3e, 4,800 GB/s; same tensor cores as H100).
- Tensor-parallel all-reduce: NCCL latency and bandwidth per TP degree on a DGX node,
  fitted to Vidur's measured data/profiling/network/{a100,h100}_dgx/all_reduce.csv.
- Per-iteration overhead and decode-attention efficiency: fitted to TensorRT-LLM's
  published in-flight-batching throughput (calibration.py, `dynabatch calibrate`).
- Model shapes: the Llama-2 / Llama-3 config.json files (layers, hidden size, KV heads,
  vocab). KV bytes per token (fp16, whole model) = 2 * layers * kv_heads * head_dim * 2.
- Published step times: linear layers only, ms per step for 1/64/256/1024/
  4096 tokens in the step, from the Vidur simulator's profiling data (Agrawal et al.,
  MLSys 2024, github.com/microsoft/vidur, data/profiling/compute/...).
- Latency constants: `dynabatch calibrate --fit` reproduces the fit (least squares on
  log error, Nelder-Mead). eta_bw is not identifiable from linear-layer figures alone
  (only W/(eta_bw*BW) + c0 is), so it is fixed at 0.80 (published decode measurements
  show 0.68-0.82) and c0 takes the rest. Profiles without published
  figures (Llama-3-8B/H100, Llama-2-13B/A100-40GB) take the fitted efficiencies of the
  same GPU's Llama-2-7B profile and scale c0 by layer count; that is stated per profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

GIB = 1 << 30
DTYPE_BYTES = {"fp16": 2, "bf16": 2, "fp8": 1}
GQA_ETA_ATTN = 0.6  # decode-attention efficiency of grouped-query models (fitted)


@dataclass(frozen=True)
class Gpu:
    name: str
    mem_bytes: int  # HBM per GPU
    hbm_bw: float  # bytes/s
    peak_flops: float  # dense FP16 tensor FLOP/s
    peak_flops_fp8: float = 0.0  # dense FP8 tensor FLOP/s; 0 = no FP8 tensor cores
    # NCCL all-reduce inside one NVLink node, per TP degree: (latency s, bus bytes/s),
    # fitted to Vidur's measured all_reduce.csv (see ALLREDUCE_SOURCE)
    allreduce: tuple[tuple[int, float, float], ...] = ()

    def allreduce_terms(self, tp: int) -> tuple[float, float]:
        for degree, latency_s, bytes_per_s in self.allreduce:
            if degree == tp:
                return latency_s, bytes_per_s
        raise ValueError(f"{self.name}: no all-reduce figures for tensor parallelism {tp}")


@dataclass(frozen=True)
class Model:
    name: str
    params: float  # all parameters
    matmul_params: float  # parameters used in matmuls (all but the input embedding)
    weight_bytes: float  # fp16 weights
    kv_bytes_per_token: int  # fp16 K+V, all layers, whole model
    layers: int
    hidden: int
    vocab_size: int
    heads: int = 32  # query heads
    kv_heads: int = 32  # K/V heads (fewer than heads = grouped-query attention)


@dataclass(frozen=True)
class Profile:
    name: str
    gpu: Gpu
    model: Model
    tp: int = 1
    # latency constants (see module doc): t_lin = ((W/(eta_bw*BW) + c0)^p + (2PN/(eta_c*F))^p)^(1/p)
    eta_bw: float = 0.80
    c0_s: float = 0.0
    eta_c: float = 0.70
    p: float = 3.0
    # weight and KV-cache data types: "fp16"/"bf16" (2 bytes) or "fp8" (1 byte; FP8 GEMMs
    # run at the GPU's FP8 peak). Model figures above are 16-bit.
    weight_dtype: str = "fp16"
    kv_dtype: str = "fp16"
    # fixed cost of one iteration beyond the kernels: scheduling, launch, sampling,
    # host-device sync (fitted with the in-flight-batching figures, see calibration.py)
    overhead_s: float = 1.0e-3
    # bandwidth efficiency of decode attention's KV reads (paged, scattered blocks);
    # None = by KV layout (see attn_efficiency). Fitted to the in-flight-batching figures.
    eta_attn: float | None = None
    runtime_reserve_bytes: int = 2 * GIB  # per GPU: CUDA context, activations, workspace
    zero_latency: bool = False
    published_ms: tuple[tuple[int, float], ...] = ()  # (tokens in step, linear-layer ms)
    source: str = ""
    notes: str = field(default="", compare=False)

    def kv_blocks(
        self, tokens_per_block: int, free_fraction: float = 0.9, max_tokens: int | None = None
    ) -> int:
        """KV cache size in blocks: given directly (`max_tokens`) or derived from memory
        left after the weights, as TensorRT-LLM's kv_cache_free_gpu_mem_fraction does."""
        if max_tokens:
            return max(1, max_tokens // tokens_per_block)
        free_per_gpu = self.gpu.mem_bytes - self.weight_bytes / self.tp - self.runtime_reserve_bytes
        kv_bytes = max(0.0, free_per_gpu) * free_fraction * self.tp
        return int(kv_bytes // (self.kv_bytes_per_token * tokens_per_block))

    @property
    def attn_efficiency(self) -> float:
        """Decode attention's bandwidth efficiency. Fitted to TensorRT-LLM's in-flight-
        batching figures (`dynabatch calibrate --fit-ifb`): 0.6 for grouped-query models
        (Llama-2-70B: few, small KV rows per token, read block by block), eta_bw for
        multi-head ones (Llama-2-7B: 0.8 fits best)."""
        if self.eta_attn is not None:
            return self.eta_attn
        return GQA_ETA_ATTN if self.model.kv_heads < self.model.heads else self.eta_bw

    @property
    def weight_bytes(self) -> float:
        return self.model.weight_bytes * DTYPE_BYTES[self.weight_dtype] / 2

    @property
    def kv_bytes_per_token(self) -> float:
        return self.model.kv_bytes_per_token * DTYPE_BYTES[self.kv_dtype] / 2

    @property
    def matmul_flops(self) -> float:
        """Peak FLOP/s of the GEMMs: FP8 weights run FP8 GEMMs."""
        if self.weight_dtype == "fp8":
            if not self.gpu.peak_flops_fp8:
                raise ValueError(f"{self.name}: {self.gpu.name} has no FP8 tensor cores")
            return self.gpu.peak_flops_fp8
        return self.gpu.peak_flops

    def __post_init__(self) -> None:
        for dtype in (self.weight_dtype, self.kv_dtype):
            if dtype not in DTYPE_BYTES:
                raise ValueError(f"{self.name}: dtype {dtype!r} not in {', '.join(DTYPE_BYTES)}")


# Median latency of small messages and bandwidth of 16-64 MiB messages, single DGX node,
# from github.com/microsoft/vidur data/profiling/network/{a100,h100}_dgx/all_reduce.csv
# (rows with num_workers == devices_per_node; `size` is bytes, times in ms).
ALLREDUCE_SOURCE = "Vidur data/profiling/network/{a100,h100}_dgx/all_reduce.csv"
_AR_A100 = ((2, 51e-6, 176e9), (4, 61e-6, 125e9), (8, 41e-6, 95e9))
_AR_H100 = ((2, 31e-6, 320e9), (4, 40e-6, 253e9), (8, 30e-6, 204e9))

A100_80GB = Gpu("A100-SXM4-80GB", 80 * GIB, 2.039e12, 312e12, allreduce=_AR_A100)
A100_40GB = Gpu("A100-SXM4-40GB", 40 * GIB, 1.555e12, 312e12, allreduce=_AR_A100)
H100 = Gpu("H100-SXM5-80GB", 80 * GIB, 3.35e12, 989e12, 1979e12, _AR_H100)
# H200 SXM: 141 GB HBM3e at 4.8 TB/s, the H100's tensor cores (989 / 1,979 dense TFLOPS
# FP16 / FP8) and NVLink 4 (NVIDIA H200 datasheet); all-reduce taken from the H100 DGX
# figures (same NVLink / NVSwitch generation).
H200 = Gpu("H200-SXM-141GB", 141 * 10**9, 4.8e12, 989e12, 1979e12, _AR_H100)

LLAMA2_7B = Model("Llama-2-7B", 6.738e9, 6.607e9, 13.48e9, 524288, 32, 4096, 32000, 32, 32)
LLAMA3_8B = Model("Llama-3-8B", 8.030e9, 7.505e9, 16.06e9, 131072, 32, 4096, 128256, 32, 8)
LLAMA2_13B = Model("Llama-2-13B", 13.016e9, 12.852e9, 26.03e9, 819200, 40, 5120, 32000, 40, 40)
LLAMA2_70B = Model("Llama-2-70B", 68.977e9, 68.715e9, 137.95e9, 327680, 80, 8192, 32000, 64, 8)
# Llama-3.1-8B has Llama-3-8B's shape; Llama-3.x-70B (3.0/3.1/3.3 share a config) has
# Llama-2-70B's layers, hidden size and 8 KV heads with a 128,256-token vocabulary.
LLAMA31_8B = Model("Llama-3.1-8B", 8.030e9, 7.505e9, 16.06e9, 131072, 32, 4096, 128256, 32, 8)
LLAMA3_70B = Model("Llama-3.x-70B", 70.554e9, 69.503e9, 141.11e9, 327680, 80, 8192, 128256, 64, 8)

_VIDUR = "Vidur profiling data (data/profiling/compute), linear layers"
_TOKENS = (1, 64, 256, 1024, 4096)


def _pub(*ms: float) -> tuple[tuple[int, float], ...]:
    return tuple(zip(_TOKENS, ms))


# Fitted constants: output of `dynabatch calibrate --fit` (eta_bw fixed at 0.80).
_PROFILES = [
    Profile(
        "llama-2-7b-a100-80gb",
        A100_80GB,
        LLAMA2_7B,
        c0_s=1.1794e-3,
        eta_c=0.6567,
        p=2.604,
        published_ms=_pub(9.28, 9.70, 17.8, 67.9, 258),
        source=_VIDUR,
    ),
    Profile(
        "llama-2-7b-h100",
        H100,
        LLAMA2_7B,
        c0_s=0.6045e-3,
        eta_c=0.6911,
        p=1.362,
        published_ms=_pub(5.60, 5.86, 9.15, 21.0, 83.5),
        source=_VIDUR,
    ),
    Profile(
        "llama-3-8b-a100-80gb",
        A100_80GB,
        LLAMA3_8B,
        c0_s=0.6978e-3,
        eta_c=0.6983,
        p=2.005,
        published_ms=_pub(9.70, 11.2, 19.5, 75.1, 274),
        source=_VIDUR,
    ),
    Profile(
        "llama-3-8b-h100",
        H100,
        LLAMA3_8B,
        c0_s=0.6045e-3,
        eta_c=0.6911,
        p=1.362,
        source="no published figure: Llama-2-7B/H100 constants (same GPU, same layer count)",
    ),
    Profile(
        "llama-2-13b-a100-40gb",
        A100_40GB,
        LLAMA2_13B,
        c0_s=1.1794e-3 * 40 / 32,
        eta_c=0.6567,
        p=2.604,
        source="no published figure: Llama-2-7B/A100 constants, c0 scaled by layers (40/32)",
        notes="memory-constrained: ~26 GB of weights on a 40 GB GPU",
    ),
    Profile(
        "llama-2-70b-tp4-a100-80gb",
        A100_80GB,
        LLAMA2_70B,
        tp=4,
        c0_s=3.4560e-3,
        eta_c=0.6632,
        p=1.797,
        published_ms=_pub(24.9, 26.8, 51.0, 184, 641),
        source=_VIDUR + ", TP4",
    ),
    Profile(
        "llama-2-70b-tp4-h100",
        H100,
        LLAMA2_70B,
        tp=4,
        c0_s=1.7967e-3,
        eta_c=0.6126,
        p=2.358,
        published_ms=_pub(14.3, 15.3, 19.2, 62.1, 223),
        source=_VIDUR + ", TP4",
    ),
    # H200 (no published step times): efficiencies and c0 of the same model on the H100
    # (same tensor cores, same NVLink), with the H200's memory and bandwidth; c0 of a
    # TP1 70B scaled from the 7B/H100 profile by layer count (80/32). FP8 profiles run
    # their GEMMs at the FP8 peak with the same efficiency.
    *(
        Profile(
            f"llama-3.1-8b-{wd}-h200",
            H200,
            LLAMA31_8B,
            c0_s=0.6045e-3,
            eta_c=0.6911,
            p=1.362,
            weight_dtype=wd,
            kv_dtype=wd,
            source="derived: Llama-2-7B/H100 constants (same layer count), H200 datasheet",
        )
        for wd in ("bf16", "fp8")
    ),
    *(
        Profile(
            f"llama-3-70b-{wd}-tp4-h200",
            H200,
            LLAMA3_70B,
            tp=4,
            c0_s=1.7967e-3,
            eta_c=0.6126,
            p=2.358,
            weight_dtype=wd,
            kv_dtype=wd,
            source="derived: Llama-2-70B TP4/H100 constants (same shape), H200 datasheet",
        )
        for wd in ("bf16", "fp8")
    ),
    Profile(
        "llama-3-70b-fp8-h200",
        H200,
        LLAMA3_70B,
        c0_s=0.6045e-3 * 80 / 32,
        eta_c=0.6911,
        p=1.362,
        weight_dtype="fp8",
        kv_dtype="fp8",
        source="derived: Llama-2-7B/H100 constants, c0 scaled by layers (80/32); "
        "TensorRT-LLM issue 16827's setting (Llama-3.3-70B-Instruct-FP8 on one H200)",
        notes="BF16 70B on one H200 does not fit (141 GB of weights), so only FP8 has a TP1 profile",
    ),
    Profile(
        "zero-latency",
        A100_80GB,
        LLAMA2_7B,
        zero_latency=True,
        source="no latency at all: transport and protocol tests (KV as llama-2-7b-a100-80gb)",
    ),
]

PROFILES: dict[str, Profile] = {p.name: p for p in _PROFILES}
DEFAULT_PROFILE = "llama-2-13b-a100-40gb"


def get_profile(name_or_profile: str | Profile) -> Profile:
    if isinstance(name_or_profile, Profile):
        return name_or_profile
    key = str(name_or_profile).strip().lower()
    if key not in PROFILES:
        raise KeyError(
            f"unknown simulator profile {name_or_profile!r}; known: {', '.join(PROFILES)}"
        )
    return PROFILES[key]


def with_constants(profile: Profile, **constants: Any) -> Profile:
    """A copy with other latency constants (used by the fit)."""
    return replace(profile, **constants)
