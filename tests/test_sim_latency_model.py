"""Latency model v2: all-reduce, per-iteration overhead, KV head layout, data types."""

from dataclasses import replace

import pytest
from dynabatch.engines.simulated.latency import LatencyModel
from dynabatch.engines.simulated.profiles import H200, LLAMA3_70B, Profile, get_profile


def test_allreduce_only_with_tensor_parallelism_and_from_vidur_figures():
    tp1 = LatencyModel(get_profile("llama-3-70b-fp8-h200"))
    tp4 = LatencyModel(get_profile("llama-3-70b-fp8-tp4-h200"))
    assert tp1.allreduce_s(4096) == 0.0
    # two all-reduces per layer of N x 8192 16-bit activations: 80 layers, H100 DGX TP4
    # figures (40 us, 253 GB/s)
    expected = 2 * 80 * (40e-6 + 4096 * 8192 * 2 / 253e9)
    assert tp4.allreduce_s(4096) == pytest.approx(expected, rel=1e-9)
    assert tp4.allreduce_s(1) < tp4.allreduce_s(8192)
    # it is part of the step: removing it makes the TP4 step shorter by exactly that
    no_comm = replace(get_profile("llama-3-70b-fp8-tp4-h200"), tp=1)
    assert tp4.step_s(64) - tp4.allreduce_s(64) > 0
    assert LatencyModel(no_comm).allreduce_s(64) == 0.0


def test_fixed_overhead_is_added_to_every_step():
    prof = get_profile("llama-2-7b-a100-80gb")
    base = LatencyModel(replace(prof, overhead_s=0.0))
    with_overhead = LatencyModel(replace(prof, overhead_s=2e-3))
    for n, kv in ((1, 100), (256, 0), (4096, 1e5)):
        assert with_overhead.step_s(n, kv) - base.step_s(n, kv) == pytest.approx(2e-3)
    assert with_overhead.linear_s(64) == base.linear_s(64)  # the published part is unchanged


def test_decode_attention_depends_on_the_kv_head_layout():
    gqa = get_profile("llama-3-70b-bf16-tp4-h200")  # 8 KV heads for 64 query heads
    mha = replace(gqa, model=replace(LLAMA3_70B, kv_heads=64, kv_bytes_per_token=327680 * 8))
    t_gqa, t_mha = LatencyModel(gqa).kv_s_per_token, LatencyModel(mha).kv_s_per_token
    assert t_mha > 8 * t_gqa * 0.6 / 0.8  # 8x the bytes, read at the MHA efficiency
    assert gqa.attn_efficiency == 0.6 and mha.attn_efficiency == gqa.eta_bw


def test_fp8_weights_and_kv_halve_bytes_and_use_the_fp8_peak():
    bf16 = get_profile("llama-3.1-8b-bf16-h200")
    fp8 = get_profile("llama-3.1-8b-fp8-h200")
    assert fp8.weight_bytes == bf16.weight_bytes / 2
    assert fp8.kv_bytes_per_token == bf16.kv_bytes_per_token / 2
    assert fp8.matmul_flops == pytest.approx(2 * bf16.matmul_flops, rel=1e-3)  # 1,979 vs 989
    assert fp8.kv_blocks(64) > 2 * bf16.kv_blocks(64)  # half the bytes, more memory left
    assert LatencyModel(fp8).linear_s(1) < LatencyModel(bf16).linear_s(1)
    assert LatencyModel(fp8).linear_s(8192) < LatencyModel(bf16).linear_s(8192)


def test_bad_dtypes_are_refused_with_the_profile_named():
    with pytest.raises(ValueError, match="dtype 'int3'"):
        Profile("x", H200, LLAMA3_70B, weight_dtype="int3")
    a100_fp8 = replace(get_profile("llama-2-7b-a100-80gb"), weight_dtype="fp8")
    with pytest.raises(ValueError, match="no FP8 tensor cores"):
        LatencyModel(a100_fp8)


def test_h200_profiles_exist_with_sources():
    for name in (
        "llama-3.1-8b-bf16-h200",
        "llama-3.1-8b-fp8-h200",
        "llama-3-70b-fp8-h200",
        "llama-3-70b-bf16-tp4-h200",
        "llama-3-70b-fp8-tp4-h200",
    ):
        prof = get_profile(name)
        assert prof.gpu is H200 and prof.source and prof.kv_blocks(64) > 0
    assert H200.hbm_bw == 4.8e12 and H200.mem_bytes == 141 * 10**9
