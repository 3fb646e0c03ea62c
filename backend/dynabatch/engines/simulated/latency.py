"""Step latency of one in-flight-batching iteration (roofline, per GPU of a TP group).

    t_step = overhead
             + t_linear(N)
             + t_allreduce(N)                     (tp > 1)
             + kv_read_tokens * t_decode_attn     (every cached token a query reads)
             + attn_pairs * t_prefill_pair        (prefill (query, key) pairs)
    t_linear(N)    = ((W/(eta_bw*BW) + c0)^p + (2*P*N/(eta_c*F))^p)^(1/p)
    t_allreduce(N) = 2 * layers * (a_tp + N * hidden * 2 bytes / b_tp)
    t_decode_attn  = max(KV bytes per token / (eta_attn*BW),
                         4 * layers * heads * head_dim / (eta_c*F16))
    t_prefill_pair = 4 * layers * hidden / (eta_c*F16)

W = weight bytes in the profile's weight dtype, P = matmul parameters, F = the GEMMs'
peak (FP8 peak for FP8 weights), N = tokens in the step (decode tokens + prefill chunk
tokens). The linear part is a smooth maximum of reading the weights once and doing the
matmul FLOPs; c0, eta_c and p are fitted to measured linear-layer times (Vidur), which
contain no communication. Tensor parallelism adds two all-reduces per layer (after
attention and after the MLP), each a message of N x hidden 16-bit activations, with
the latency a_tp and bandwidth b_tp measured for NCCL on a DGX node (profiles.py).
Decode attention reads each cached token's K/V once per step; its FLOPs per cached token
grow with the query heads while its bytes grow with the KV heads, so grouped-query
attention (8 KV heads for 64 query heads) reads 8x fewer bytes for the same FLOPs. For
every profile here the byte term is the larger (arithmetic intensity 1-16 FLOP/B against
a ridge of ~150 FLOP/B), but the max keeps the model honest for other layouts.
`overhead` is a fixed host-side cost per iteration (scheduling, launches, sampling).
With tensor parallelism each GPU holds 1/tp of weights, KV and FLOPs.
"""

from __future__ import annotations

from .profiles import Profile


class LatencyModel:
    def __init__(self, profile: Profile) -> None:
        pr, g, m, tp = profile, profile.gpu, profile.model, profile.tp
        self.profile = profile
        self.zero = pr.zero_latency
        # Each step reads the matmul weights once (the input embedding is only gathered).
        matmul_bytes = pr.weight_bytes * m.matmul_params / m.params
        self.mem_s = matmul_bytes / tp / (pr.eta_bw * g.hbm_bw) + pr.c0_s
        self.flop_s_per_token = 2.0 * m.matmul_params / tp / (pr.eta_c * pr.matmul_flops)
        head_dim = m.hidden // m.heads
        kv_read_s = pr.kv_bytes_per_token / tp / (pr.attn_efficiency * g.hbm_bw)
        attn_flop_s = 4.0 * m.layers * m.heads * head_dim / tp / (pr.eta_c * g.peak_flops)
        self.kv_s_per_token = max(kv_read_s, attn_flop_s)
        self.attn_s_per_unit = 4.0 * m.layers * m.hidden / tp / (pr.eta_c * g.peak_flops)
        self.overhead_s = pr.overhead_s
        if tp > 1:
            latency_s, bytes_per_s = g.allreduce_terms(tp)
            self.ar_fixed_s = 2 * m.layers * latency_s
            self.ar_s_per_token = 2 * m.layers * m.hidden * 2 / bytes_per_s
        else:
            self.ar_fixed_s = self.ar_s_per_token = 0.0
        self.p = pr.p
        self._mem_p = self.mem_s**pr.p
        self._inv_p = 1.0 / pr.p

    def linear_s(self, num_tokens: int) -> float:
        """Linear layers only (the published figures measure this part)."""
        if self.zero or num_tokens <= 0:
            return 0.0
        return (self._mem_p + (self.flop_s_per_token * num_tokens) ** self.p) ** self._inv_p

    def allreduce_s(self, num_tokens: int) -> float:
        """Tensor-parallel communication of one step (0 without tensor parallelism)."""
        if self.zero or num_tokens <= 0 or not self.ar_fixed_s:
            return 0.0
        return self.ar_fixed_s + self.ar_s_per_token * num_tokens

    def step_s(
        self, num_tokens: int, kv_read_tokens: float = 0.0, attn_units: float = 0.0
    ) -> float:
        """Whole iteration: overhead, linear layers, all-reduce, attention."""
        if self.zero or num_tokens <= 0:
            return 0.0
        return (
            self.overhead_s
            + self.linear_s(num_tokens)
            + self.allreduce_s(num_tokens)
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
