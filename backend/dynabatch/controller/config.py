"""Every config.pbtxt parameter of every batch policy, declared once."""

from __future__ import annotations

from ..params import ParamSpec

POLICIES = (
    "adaptive",
    "paper",
    "paper_memory",
    "paper_sla",
    "static",
    "trtllm_tuner",
    "sglang_ratio",
)

_G = "controller"

CONTROLLER_PARAMS: list[ParamSpec] = [
    ParamSpec(
        "batch_policy",
        str,
        "adaptive",
        "how the in-flight batch limit is set",
        choices=POLICIES,
        group=_G,
    ),
    # bounds, every policy
    ParamSpec(
        "batch_size_lower",
        int,
        1,
        "lowest in-flight limit any policy may set (B_min)",
        min=1,
        group=_G,
    ),
    ParamSpec(
        "batch_size_upper",
        int,
        0,
        "highest in-flight limit (B_max); 0 = the engine's max_batch_size",
        min=0,
        group=_G,
    ),
    # static
    ParamSpec(
        "static_batch_size",
        int,
        0,
        "`static`: the fixed limit; 0 = batch_size_upper",
        min=0,
        group=_G,
    ),
    # paper_memory (Algorithm 1)
    ParamSpec(
        "memory_factor",
        float,
        0.95,
        "`paper_memory`: fraction of KV blocks Algorithm 1 may fill",
        min=0.01,
        max=1.0,
        group=_G,
    ),
    # SLA (Algorithm 2 and adaptive)
    ParamSpec(
        "tpot_sla_ms", float, 100.0, "time-per-output-token SLA D_SLA (ms)", min=0.001, group=_G
    ),
    ParamSpec(
        "tpot_sla_tolerance_ms",
        float,
        0.0,
        "`paper_sla`: tolerance band eps_D around D_SLA (ms); 0 = 5 % of tpot_sla_ms",
        min=0.0,
        group=_G,
    ),
    ParamSpec(
        "sla_window_alpha",
        float,
        4.0,
        "`paper_sla`: minimum search-window width alpha (requests)",
        min=0.0,
        group=_G,
    ),
    ParamSpec(
        "sla_step_delta",
        float,
        2.0,
        "`paper_sla`: window step delta per iteration (requests)",
        min=0.0,
        group=_G,
    ),
    ParamSpec(
        "sla_smoothing",
        float,
        0.1,
        "`paper_sla`: EWMA weight of the newest iteration in the TPOT and batch moving averages",
        min=0.001,
        max=1.0,
        group=_G,
    ),
    ParamSpec(
        "tpot_percentile",
        float,
        99.0,
        "`adaptive`: TPOT percentile (over recent iterations) held under tpot_sla_ms",
        min=50.0,
        max=100.0,
        group=_G,
    ),
    # adaptive
    ParamSpec(
        "ttft_sla_s",
        float,
        2.0,
        "`adaptive`: TTFT target (s); while the oldest queued request has waited longer, "
        "the TPOT bound steps aside; as its wait nears half of it, the KV forecast sheds "
        "its overflow margin (0 = never)",
        min=0.0,
        group=_G,
    ),
    ParamSpec(
        "prefill_pacing",
        bool,
        True,
        "`adaptive`: pace admissions by their prompt tokens so that no iteration's "
        "predicted latency (the learned step-latency fit) exceeds tpot_sla_ms while "
        "requests decode; at least one request per iteration once the oldest queued "
        "request has waited a quarter of ttft_sla_s",
        group=_G,
    ),
    ParamSpec(
        "kv_target_fraction",
        float,
        0.97,
        "`adaptive`: fraction of KV capacity the predicted occupancy may use",
        min=0.1,
        max=1.0,
        group=_G,
    ),
    ParamSpec(
        "kv_overflow_prob",
        float,
        0.1,
        "`adaptive`: accepted probability eps_M that occupancy exceeds the target",
        min=1e-6,
        max=0.5,
        group=_G,
    ),
    ParamSpec(
        "forecast_overflow_prob",
        float,
        0.2,
        "`adaptive`: accepted probability that the forecast KV occupancy of the admitted "
        "requests overflows the cache at its peak (per admission, queue head known)",
        min=1e-6,
        max=0.5,
        group=_G,
    ),
    ParamSpec(
        "length_window",
        int,
        512,
        "`adaptive`: finished requests the length model learns from",
        min=8,
        group=_G,
    ),
    ParamSpec(
        "pause_backoff",
        float,
        0.9,
        "`adaptive`: memory-bound scale after an eviction (multiplicative)",
        min=0.1,
        max=1.0,
        group=_G,
    ),
    ParamSpec(
        "pause_recovery_s",
        float,
        30.0,
        "`adaptive`: seconds without evictions for the KV-budget scale to climb by 1",
        min=0.0,
        group=_G,
    ),
    ParamSpec(
        "kv_probe_max",
        float,
        2.0,
        "`adaptive`: how far above the model's KV budget eviction-free operation may "
        "probe (scale on the budget)",
        min=0.1,
        max=4.0,
        group=_G,
    ),
    ParamSpec(
        "limit_tolerance",
        float,
        0.02,
        "`adaptive`: tolerance band; changes smaller than this fraction are ignored",
        min=0.0,
        max=0.5,
        group=_G,
    ),
    ParamSpec(
        "stabilization_s",
        float,
        2.0,
        "`adaptive`: a raise must be recommended for this many seconds",
        min=0.0,
        group=_G,
    ),
    # trtllm_tuner
    ParamSpec(
        "tuner_window",
        int,
        128,
        "`trtllm_tuner`: moving-average window (request samples)",
        min=1,
        group=_G,
    ),
    # sglang_ratio
    ParamSpec(
        "sglang_init_ratio",
        float,
        0.7,
        "`sglang_ratio`: initial new_token_ratio",
        min=0.0,
        max=1.0,
        group=_G,
    ),
    ParamSpec(
        "sglang_min_ratio_factor",
        float,
        0.14,
        "`sglang_ratio`: floor of the ratio as a factor of the initial ratio",
        min=0.0,
        max=1.0,
        group=_G,
    ),
    ParamSpec(
        "sglang_decay_steps",
        int,
        600,
        "`sglang_ratio`: decode steps for the ratio to decay to its floor",
        min=1,
        group=_G,
    ),
    ParamSpec(
        "sglang_clip_max_new_tokens",
        int,
        4096,
        "`sglang_ratio`: cap on one request's reserved new tokens",
        min=1,
        group=_G,
    ),
]

SPECS = {spec.name: spec for spec in CONTROLLER_PARAMS}
