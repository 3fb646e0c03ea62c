#!/usr/bin/env python3
"""Measure a step-latency grid of a Llama-shaped decoder with random weights.

On a GPU (PyTorch, bf16): decode steps at batch x context points and prefill steps at
several lengths, each the median of timed repeats after a warm-up, with the device
named in the output, so a simulator profile can be fitted to it (docs/SIMULATOR.md).
Without PyTorch (or with --backend numpy) the same layer arithmetic runs in numpy
float32 on the CPU: that path exists so the script is tested everywhere, on a tiny
shape; its timings say nothing about a GPU.

    python scripts/measure_step_latency.py --shape llama-3.1-8b --out grid.json   # GPU
    python scripts/measure_step_latency.py --backend numpy --shape tiny           # CPU

The layer: RMSNorm, QKV projection, attention over a KV cache with grouped-query heads,
output projection, RMSNorm, SwiGLU MLP (gate, up, down). Weights are shared by all
layers (same shapes and bytes read per layer as distinct weights would be, a fraction
of the memory); the KV cache is per layer. A budget (--budget-s) stops the grid early
and says so in the output.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Shape:
    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int


SHAPES = {
    # Llama-3.1-8B config.json: 32 layers, hidden 4096, 32 heads, 8 KV heads, MLP 14336
    "llama-3.1-8b": Shape("llama-3.1-8b", 32, 4096, 32, 8, 14336),
    "tiny": Shape("tiny", 2, 64, 4, 2, 128),
}
DEFAULT_DECODE = ((1, 512), (8, 512), (32, 1024), (64, 2048), (128, 1024), (64, 8192))
DEFAULT_PREFILL = (128, 512, 2048, 8192)


def _points(text: str | None, default):
    if not text:
        return default
    return tuple(tuple(int(v) for v in item.split("x")) for item in text.split(","))


class NumpyDecoder:
    """float32 reference on the CPU (tests, machines without PyTorch)."""

    device = "cpu (numpy float32)"

    def __init__(self, shape: Shape, seed: int = 0) -> None:
        import numpy as np

        self.np, self.s = np, shape
        rng = np.random.default_rng(seed)
        hd = shape.hidden // shape.heads
        h, kv = shape.hidden, shape.kv_heads * hd

        def w(a, b):
            return (rng.standard_normal((a, b)) / a**0.5).astype(np.float32)

        self.wqkv, self.wo = w(h, h + 2 * kv), w(h, h)
        self.wg, self.wu, self.wd = (
            w(h, shape.intermediate),
            w(h, shape.intermediate),
            w(shape.intermediate, h),
        )

    def _layer(self, x, k_cache, v_cache):
        np, s = self.np, self.s
        hd = s.hidden // s.heads
        n, t = x.shape[0], x.shape[1]
        y = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6)
        qkv = y @ self.wqkv
        q = qkv[..., : s.hidden].reshape(n, t, s.heads, hd).transpose(0, 2, 1, 3)
        k = qkv[..., s.hidden : s.hidden + s.kv_heads * hd].reshape(n, t, s.kv_heads, hd)
        v = qkv[..., s.hidden + s.kv_heads * hd :].reshape(n, t, s.kv_heads, hd)
        keys = np.concatenate([k_cache, k.transpose(0, 2, 1, 3)], axis=2)
        vals = np.concatenate([v_cache, v.transpose(0, 2, 1, 3)], axis=2)
        group = s.heads // s.kv_heads
        keys, vals = np.repeat(keys, group, axis=1), np.repeat(vals, group, axis=1)
        att = q @ keys.transpose(0, 1, 3, 2) / hd**0.5
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = (att @ vals).transpose(0, 2, 1, 3).reshape(n, t, s.hidden)
        x = x + o @ self.wo
        y = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6)
        g = y @ self.wg
        return x + ((g / (1 + np.exp(-g))) * (y @ self.wu)) @ self.wd

    def step(self, batch: int, new_tokens: int, context: int) -> float:
        np, s = self.np, self.s
        hd = s.hidden // s.heads
        x = np.ones((batch, new_tokens, s.hidden), np.float32)
        cache = np.zeros((batch, s.kv_heads, context, hd), np.float32)
        t0 = time.perf_counter()
        for _ in range(s.layers):
            x = self._layer(x, cache, cache)
        return time.perf_counter() - t0


class TorchDecoder:
    """bf16 on the GPU; scaled_dot_product_attention with grouped-query heads."""

    def __init__(self, shape: Shape, seed: int = 0) -> None:
        import torch

        self.torch, self.s = torch, shape
        self.dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch.bfloat16 if self.dev.type == "cuda" else torch.float32
        self.device = torch.cuda.get_device_name(0) if self.dev.type == "cuda" else "cpu (torch)"
        torch.manual_seed(seed)
        hd = shape.hidden // shape.heads
        h, kv = shape.hidden, shape.kv_heads * hd

        def w(a, b):
            return torch.randn(a, b, device=self.dev, dtype=self.dtype) / a**0.5

        self.wqkv, self.wo = w(h, h + 2 * kv), w(h, h)
        self.wg, self.wu, self.wd = (
            w(h, shape.intermediate),
            w(h, shape.intermediate),
            w(shape.intermediate, h),
        )

    def _norm(self, x):
        return x * self.torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6).to(x.dtype)

    def _layer(self, x, k_cache, v_cache):
        torch, s = self.torch, self.s
        F = torch.nn.functional
        hd = s.hidden // s.heads
        n, t = x.shape[0], x.shape[1]
        y = self._norm(x)
        qkv = y @ self.wqkv
        q = qkv[..., : s.hidden].view(n, t, s.heads, hd).transpose(1, 2)
        k = (
            qkv[..., s.hidden : s.hidden + s.kv_heads * hd]
            .view(n, t, s.kv_heads, hd)
            .transpose(1, 2)
        )
        v = qkv[..., s.hidden + s.kv_heads * hd :].view(n, t, s.kv_heads, hd).transpose(1, 2)
        keys = torch.cat([k_cache, k], dim=2)
        vals = torch.cat([v_cache, v], dim=2)
        try:  # torch >= 2.5 reads each KV head once for its query group
            o = F.scaled_dot_product_attention(q, keys, vals, is_causal=t > 1, enable_gqa=True)
        except TypeError:  # older torch: expand the KV heads (more bytes read)
            group = s.heads // s.kv_heads
            keys, vals = keys.repeat_interleave(group, 1), vals.repeat_interleave(group, 1)
            o = F.scaled_dot_product_attention(q, keys, vals, is_causal=t > 1)
        x = x + o.transpose(1, 2).reshape(n, t, s.hidden) @ self.wo
        y = self._norm(x)
        return x + (F.silu(y @ self.wg) * (y @ self.wu)) @ self.wd

    def step(self, batch: int, new_tokens: int, context: int) -> float:
        torch, s = self.torch, self.s
        hd = s.hidden // s.heads
        with torch.inference_mode():
            x = torch.ones(batch, new_tokens, s.hidden, device=self.dev, dtype=self.dtype)
            caches = [
                torch.zeros(batch, s.kv_heads, context, hd, device=self.dev, dtype=self.dtype)
                for _ in range(s.layers)
            ]
            if self.dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for layer in range(s.layers):
                x = self._layer(x, caches[layer], caches[layer])
            if self.dev.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - t0
            del caches
            return elapsed


def measure(model, decode, prefill, repeats: int, budget_s: float) -> dict:
    t_start = time.monotonic()
    rows, skipped = [], []
    points = [("decode", b, 1, c) for b, c in decode] + [("prefill", 1, n, 0) for (n,) in prefill]
    for kind, batch, new, ctx in points:
        if time.monotonic() - t_start > budget_s:
            skipped.append({"kind": kind, "batch": batch, "new_tokens": new, "context": ctx})
            continue
        model.step(batch, new, ctx)  # warm-up (kernels, allocator)
        times = [model.step(batch, new, ctx) for _ in range(repeats)]
        rows.append(
            {
                "kind": kind,
                "batch": batch,
                "new_tokens": new,
                "context": ctx,
                "tokens_in_step": batch * new,
                "median_ms": statistics.median(times) * 1e3,
                "min_ms": min(times) * 1e3,
            }
        )
    return {"rows": rows, "skipped_for_budget": skipped, "wall_s": time.monotonic() - t_start}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=tuple(SHAPES), default="llama-3.1-8b")
    ap.add_argument("--backend", choices=("auto", "torch", "numpy"), default="auto")
    ap.add_argument("--decode", help="decode points BATCHxCONTEXT,... (default a 6-point grid)")
    ap.add_argument("--prefill", help="prefill lengths N,N,... (default 128,512,2048,8192)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--budget-s", type=float, default=420.0, help="stop starting new points after this"
    )
    ap.add_argument("--out", help="write the grid as JSON")
    args = ap.parse_args(argv)
    shape = SHAPES[args.shape]
    backend = args.backend
    if backend == "auto":
        try:
            import torch  # noqa: F401

            backend = "torch"
        except ImportError:
            backend = "numpy"
    model = TorchDecoder(shape) if backend == "torch" else NumpyDecoder(shape)
    decode = _points(args.decode, DEFAULT_DECODE)
    prefill = _points(args.prefill, tuple((n,) for n in DEFAULT_PREFILL))
    result = {
        "shape": asdict(shape),
        "backend": backend,
        "device": model.device,
        "host": platform.node(),
        "python": sys.version.split()[0],
        "repeats": args.repeats,
        **measure(model, decode, prefill, args.repeats, args.budget_s),
    }
    for r in result["rows"]:
        print(
            f"{r['kind']:<8} batch {r['batch']:>4} new {r['new_tokens']:>5} context {r['context']:>6}"
            f"  {r['median_ms']:9.3f} ms"
        )
    print(
        f"device: {result['device']}; {len(result['skipped_for_budget'])} points skipped for budget"
    )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
