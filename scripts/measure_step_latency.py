#!/usr/bin/env python3
"""Measure a step-latency grid of a Llama-shaped decoder with random weights.

On a GPU (PyTorch, bf16): decode steps at batch x context points and prefill steps at
several lengths, each the median of timed repeats after a warm-up, timed with CUDA
events both eager and replayed from a CUDA graph, with the device named in the output,
so a simulator profile can be compared with it (docs/SIMULATOR.md,
`dynabatch calibrate --step-grid`).
Without PyTorch (or with --backend numpy) the same layer arithmetic runs in numpy
float32 on the CPU: that path exists so the script is tested everywhere, on a tiny
shape; its timings say nothing about a GPU.

    python scripts/measure_step_latency.py --shape llama-3.1-8b --out grid.json   # GPU
    python scripts/measure_step_latency.py --backend numpy --shape tiny           # CPU

The layer: RMSNorm, QKV projection, attention over a KV cache with grouped-query heads,
output projection, RMSNorm, SwiGLU MLP (gate, up, down); after the last layer the LM
head on each sequence's last token. On the GPU every layer has its own weights; on the
CPU one set serves all layers (a fraction of the memory). The KV cache is per layer. A
point that fails (out of memory, say) is recorded with its error and the grid goes on;
a budget (--budget-s) stops starting new points and says so in the output.
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
    vocab: int


SHAPES = {
    # Llama-3.1-8B config.json: 32 layers, hidden 4096, 32 heads, 8 KV heads, MLP 14336,
    # vocabulary 128,256
    "llama-3.1-8b": Shape("llama-3.1-8b", 32, 4096, 32, 8, 14336, 128256),
    "tiny": Shape("tiny", 2, 64, 4, 2, 128, 256),
}
# Batch sweeps at 1k context (the linear layers' memory-to-compute bend), context sweeps
# at fixed batches (the attention term), prefill lengths up to max_num_tokens 8192. The
# largest point holds 256 x 2,049 tokens of KV (67 GB in bf16 for the 8B shape).
DEFAULT_DECODE = (
    (1, 1024), (4, 1024), (16, 1024), (32, 1024), (64, 1024), (128, 1024), (256, 1024),
    (1, 8192), (16, 8192), (64, 4096), (64, 8192), (256, 2048),
)  # fmt: skip
DEFAULT_PREFILL = (128, 256, 512, 1024, 2048, 4096, 8192)


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
        self.lm_head = w(h, shape.vocab)

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
        x[:, -1] @ self.lm_head
        return time.perf_counter() - t0

    def time_point(self, batch: int, new_tokens: int, context: int, repeats: int) -> dict:
        self.step(batch, new_tokens, context)  # warm-up
        times = [self.step(batch, new_tokens, context) for _ in range(repeats)]
        return {"median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3}


class TorchDecoder:
    """bf16 on the GPU, shaped like a TensorRT-LLM decode step.

    Distinct weights per layer and the LM head (the bytes a step really reads); a KV
    cache allocated once per point and written in place, so attention reads each cached
    token once, as paged attention does (concatenating would copy the cache every step);
    grouped-query attention through scaled_dot_product_attention. Each point is timed
    twice with CUDA events: eager (every kernel launched from Python) and replayed from a
    CUDA graph, which is how TensorRT-LLM runs decode steps and strips the launch cost.
    """

    def __init__(self, shape: Shape, seed: int = 0) -> None:
        import torch

        self.torch, self.s = torch, shape
        self.dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.cuda = self.dev.type == "cuda"
        self.dtype = torch.bfloat16 if self.cuda else torch.float32
        self.device = torch.cuda.get_device_name(0) if self.cuda else "cpu (torch)"
        torch.manual_seed(seed)
        hd = shape.hidden // shape.heads
        h, kv = shape.hidden, shape.kv_heads * hd

        def w(a, b):
            return torch.randn(a, b, device=self.dev, dtype=self.dtype) / a**0.5

        def layer():
            return (w(h, h + 2 * kv), w(h, h), w(h, shape.intermediate),
                    w(h, shape.intermediate), w(shape.intermediate, h))  # fmt: skip

        # On a CPU (tests) one set of weights serves every layer, to save memory.
        shared = None if self.cuda else layer()
        self.weights = [shared or layer() for _ in range(shape.layers)]
        self.lm_head = w(h, shape.vocab)

    def _norm(self, x):
        return x * self.torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6).to(x.dtype)

    def _layer(self, wts, x, k_cache, v_cache, pos: int):
        F, s = self.torch.nn.functional, self.s
        wqkv, wo, wg, wu, wd = wts
        hd = s.hidden // s.heads
        n, t = x.shape[0], x.shape[1]
        qkv = self._norm(x) @ wqkv
        q = qkv[..., : s.hidden].view(n, t, s.heads, hd).transpose(1, 2)
        kv_end = s.hidden + s.kv_heads * hd
        k_cache[:, :, pos : pos + t] = qkv[..., s.hidden : kv_end].view(n, t, s.kv_heads, hd).transpose(1, 2)  # fmt: skip
        v_cache[:, :, pos : pos + t] = qkv[..., kv_end:].view(n, t, s.kv_heads, hd).transpose(1, 2)  # fmt: skip
        keys, vals = k_cache[:, :, : pos + t], v_cache[:, :, : pos + t]
        causal = t > 1 and pos == 0  # a prompt attends to itself; one new token to everything
        try:  # torch >= 2.5 reads each KV head once for its query group
            o = F.scaled_dot_product_attention(q, keys, vals, is_causal=causal, enable_gqa=True)
        except TypeError:  # older torch: expand the KV heads (more bytes read)
            group = s.heads // s.kv_heads
            keys, vals = keys.repeat_interleave(group, 1), vals.repeat_interleave(group, 1)
            o = F.scaled_dot_product_attention(q, keys, vals, is_causal=causal)
        x = x + o.transpose(1, 2).reshape(n, t, s.hidden) @ wo
        y = self._norm(x)
        return x + (F.silu(y @ wg) * (y @ wu)) @ wd

    def _forward(self, x, caches, pos: int):
        for wts, (k, v) in zip(self.weights, caches):
            x = self._layer(wts, x, k, v, pos)
        return self._norm(x[:, -1]) @ self.lm_head  # logits of each sequence's last token

    def _time(self, fn, repeats: int) -> list[float]:
        torch = self.torch
        if not self.cuda:
            out = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
            return out
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        out = []
        for _ in range(repeats):
            start.record()
            fn()
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end) / 1e3)
        return out

    def time_point(self, batch: int, new_tokens: int, context: int, repeats: int) -> dict:
        torch, s = self.torch, self.s
        hd = s.hidden // s.heads
        with torch.inference_mode():
            x = torch.ones(batch, new_tokens, s.hidden, device=self.dev, dtype=self.dtype)
            length = context + new_tokens
            shape = (batch, s.kv_heads, length, hd)
            caches = [
                (torch.zeros(shape, device=self.dev, dtype=self.dtype),
                 torch.zeros(shape, device=self.dev, dtype=self.dtype))
                for _ in range(s.layers)
            ]  # fmt: skip

            def step():
                return self._forward(x, caches, context)

            step()  # warm-up (kernels, allocator, autotuning)
            eager = self._time(step, repeats)
            row: dict[str, float | str] = {"eager_ms": statistics.median(eager) * 1e3}
            times = eager
            if self.cuda:
                try:
                    side = torch.cuda.Stream()
                    side.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(side):
                        step()
                    torch.cuda.current_stream().wait_stream(side)
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph):
                        step()
                    graph.replay()
                    times = self._time(graph.replay, repeats)
                    row["graph_ms"] = statistics.median(times) * 1e3
                    del graph
                except Exception as exc:  # report it, keep the eager time
                    row["graph_error"] = f"{type(exc).__name__}: {exc}"[:300]
            caches.clear()  # free the point's KV before the next one
            if self.cuda:
                torch.cuda.empty_cache()
        return {"median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3, **row}


def measure(model, decode, prefill, repeats: int, budget_s: float) -> dict:
    t_start = time.monotonic()
    rows, skipped = [], []
    points = [("decode", b, 1, c) for b, c in decode] + [("prefill", 1, n, 0) for (n,) in prefill]
    for kind, batch, new, ctx in points:
        if time.monotonic() - t_start > budget_s:
            skipped.append({"kind": kind, "batch": batch, "new_tokens": new, "context": ctx})
            continue
        point = {"kind": kind, "batch": batch, "new_tokens": new, "context": ctx}
        try:
            timing = model.time_point(batch, new, ctx, repeats)
        except Exception as exc:  # out of memory, say: record it, go on
            rows.append({**point, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        rows.append({**point, "tokens_in_step": batch * new, **timing})
        print(_describe(rows[-1]), flush=True)
    return {"rows": rows, "skipped_for_budget": skipped, "wall_s": time.monotonic() - t_start}


def _describe(r: dict) -> str:
    where = (
        f"{r['kind']:<8} batch {r['batch']:>4} new {r['new_tokens']:>5} context {r['context']:>6}"
    )
    if "error" in r:
        return f"{where}  error: {r['error']}"
    extra = f" (eager {r['eager_ms']:.3f} ms)" if "graph_ms" in r else ""
    return f"{where}  {r['median_ms']:9.3f} ms{extra}"


def _torch_version() -> str:
    import torch

    return f"{torch.__version__} (CUDA {torch.version.cuda})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=tuple(SHAPES), default="llama-3.1-8b")
    ap.add_argument("--backend", choices=("auto", "torch", "numpy"), default="auto")
    ap.add_argument("--decode", help="decode points BATCHxCONTEXT,... (default a 12-point grid)")
    ap.add_argument("--prefill", help="prefill lengths N,N,... (default 128 to 8192, doubling)")
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
        "torch": _torch_version() if backend == "torch" else None,
        **measure(model, decode, prefill, args.repeats, args.budget_s),
    }
    print(
        f"device: {result['device']}; {len(result['skipped_for_budget'])} points skipped for budget"
    )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
