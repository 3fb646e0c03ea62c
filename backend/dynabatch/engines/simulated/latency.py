"""Roofline step latency of one in-flight-batching iteration (docs/SIMULATOR.md).

    t_step = t_linear(N) + kv_read_tokens * kv_bytes / (eta_bw * BW)
             + attn_units * 4 * layers * hidden / (eta_c * F)
    t_linear(N) = ((W / (eta_bw * BW) + c0)^p + (2 * P * N / (eta_c * F))^p)^(1/p)

W = fp16 bytes of the matmul weights, P = matmul parameters, N is the number of tokens in the step (decode tokens + prefill chunk tokens). The
linear part is a smooth maximum of reading the weights once and doing the matmul
FLOPs. Attention reads every cached token of every request in the step once
(`kv_read_tokens`); prefill attention does ~4*layers*hidden FLOPs per (query, key)
pair, and a chunk of c new tokens after `past` cached ones has c*(past + c/2) pairs
(`attn_units`). With tensor parallelism each GPU holds 1/tp of weights, KV and FLOPs.
"""

from __future__ import annotations

from .profiles import Profile


class LatencyModel:
    def __init__(self, profile: Profile) -> None:
        pr, g, m, tp = profile, profile.gpu, profile.model, profile.tp
        self.profile = profile
        self.zero = pr.zero_latency
        # Each step reads the matmul weights once (the input embedding is only gathered).
        self.mem_s = 2.0 * m.matmul_params / tp / (pr.eta_bw * g.hbm_bw) + pr.c0_s
        self.flop_s_per_token = 2.0 * m.matmul_params / tp / (pr.eta_c * g.peak_flops)
        self.kv_s_per_token = m.kv_bytes_per_token / tp / (pr.eta_bw * g.hbm_bw)
        self.attn_s_per_unit = 4.0 * m.layers * m.hidden / tp / (pr.eta_c * g.peak_flops)
        self.p = pr.p
        self._mem_p = self.mem_s**pr.p
        self._inv_p = 1.0 / pr.p

    def linear_s(self, num_tokens: int) -> float:
        """Linear layers only (the published figures measure this part)."""
        if self.zero or num_tokens <= 0:
            return 0.0
        return (self._mem_p + (self.flop_s_per_token * num_tokens) ** self.p) ** self._inv_p

    def step_s(
        self, num_tokens: int, kv_read_tokens: float = 0.0, attn_units: float = 0.0
    ) -> float:
        """Whole iteration: linear layers + attention (KV read, prefill attention FLOPs)."""
        if self.zero or num_tokens <= 0:
            return 0.0
        return (
            self.linear_s(num_tokens)
            + kv_read_tokens * self.kv_s_per_token
            + attn_units * self.attn_s_per_unit
        )

    def static_batch_s(self, batch: int, prompt_len: int, output_len: int) -> float:
        """A static batch run end to end: one prefill step, then output_len - 1 decode
        steps with every request reading its whole cache each step."""
        total = self.step_s(batch * prompt_len, 0.0, batch * prompt_len * (prompt_len / 2.0))
        for k in range(1, output_len):
            total += self.step_s(batch, batch * (prompt_len + k))
        return total
