"""Named GPU x model profiles for the simulated executor.

A profile holds the hardware and model figures the roofline latency model needs, the
four latency constants fitted to published measurements, and those measurements.

Sources
- GPU datasheets: NVIDIA A100 (SXM4 80 GB: 2,039 GB/s; 40 GB: 1,555 GB/s; dense FP16
  tensor 312 TFLOPS) and H100 SXM5 (3,350 GB/s; dense FP16 tensor 989 TFLOPS).
- Model shapes: the Llama-2 / Llama-3 config.json files (layers, hidden size, KV heads,
  vocab). KV bytes per token (fp16, whole model) = 2 * layers * kv_heads * head_dim * 2.
- Published step times (docs/SIMULATOR.md): linear layers only, ms per step for 1/64/256/1024/
  4096 tokens in the step, from the Vidur simulator's profiling data (Agrawal et al.,
  MLSys 2024, github.com/microsoft/vidur, data/profiling/compute/...).
- Latency constants: `dynabatch calibrate --fit` reproduces the fit (least squares on
  log error, Nelder-Mead). eta_bw is not identifiable from linear-layer figures alone
  (only W/(eta_bw*BW) + c0 is), so it is fixed at 0.80 (docs/SIMULATOR.md: 0.68-0.82 seen in
  published decode measurements) and c0 takes the rest. Profiles without published
  figures (Llama-3-8B/H100, Llama-2-13B/A100-40GB) take the fitted efficiencies of the
  same GPU's Llama-2-7B profile and scale c0 by layer count; that is stated per profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

GIB = 1 << 30


@dataclass(frozen=True)
class Gpu:
    name: str
    mem_bytes: int  # HBM per GPU
    hbm_bw: float  # bytes/s
    peak_flops: float  # dense FP16 tensor FLOP/s


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
        free_per_gpu = (
            self.gpu.mem_bytes - self.model.weight_bytes / self.tp - self.runtime_reserve_bytes
        )
        kv_bytes = max(0.0, free_per_gpu) * free_fraction * self.tp
        return int(kv_bytes // (self.model.kv_bytes_per_token * tokens_per_block))


A100_80GB = Gpu("A100-SXM4-80GB", 80 * GIB, 2.039e12, 312e12)
A100_40GB = Gpu("A100-SXM4-40GB", 40 * GIB, 1.555e12, 312e12)
H100 = Gpu("H100-SXM5-80GB", 80 * GIB, 3.35e12, 989e12)

LLAMA2_7B = Model("Llama-2-7B", 6.738e9, 6.607e9, 13.48e9, 524288, 32, 4096, 32000)
LLAMA3_8B = Model("Llama-3-8B", 8.030e9, 7.505e9, 16.06e9, 131072, 32, 4096, 128256)
LLAMA2_13B = Model("Llama-2-13B", 13.016e9, 12.852e9, 26.03e9, 819200, 40, 5120, 32000)
LLAMA2_70B = Model("Llama-2-70B", 68.977e9, 68.715e9, 137.95e9, 327680, 80, 8192, 32000)

_VIDUR = "Vidur profiling data (docs/SIMULATOR.md), linear layers"
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
