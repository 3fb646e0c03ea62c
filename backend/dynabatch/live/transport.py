"""Transport overhead: tokens/s our model streams to perf_analyzer vs the Python
backend's ceiling (bare_stream: a decoupled model that only streams responses).

Both models sit in one tritonserver and get the same perf_analyzer load, one after
the other; the engine is the `zero-latency` profile, so what is measured is the cost
of turning engine events into Triton responses.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..bench.workload import WorkItem, Workload
from .models import BARE_STREAM_MODEL, DYNAMIC_MODEL, simulated_params
from .server import TritonServer, build_repository
from .sweep import SweepConfig, input_data, model_input_names, run_sweep


@dataclass
class TransportResult:
    ours_tok_s: float
    bare_tok_s: float
    ours_resp_s: float
    bare_resp_s: float

    @property
    def ratio(self) -> float:
        return self.ours_tok_s / self.bare_tok_s if self.bare_tok_s else float("nan")


def run_transport(
    out_dir: Path,
    concurrency: int = 16,
    prompt_len: int = 16,
    output_len: int = 256,
    measurement_ms: int = 4000,
    rounds: int = 1,
    extra_params: dict | None = None,
    bare_mode: str = "inline",
) -> TransportResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    repo = build_repository(
        out_dir / "repo",
        {"dynabatch": DYNAMIC_MODEL, "bare_stream": BARE_STREAM_MODEL},
        overrides={
            "dynabatch": simulated_params("zero-latency", 1.0, **(extra_params or {})),
            "bare_stream": {"mode": bare_mode},
        },
    )
    workload = Workload(
        "transport", (WorkItem(0.0, prompt_len, output_len),), max_new_tokens=output_len
    )
    totals = {"dynabatch": [0.0, 0.0], "bare_stream": [0.0, 0.0]}
    with TritonServer(repo, log_path=out_dir / "server.log") as server:
        for r in range(rounds):
            # Alternate the order each round so drift (other load on the machine) is shared.
            order = ["dynabatch", "bare_stream"] if r % 2 == 0 else ["bare_stream", "dynabatch"]
            for model in order:
                names = model_input_names(server.grpc_url, model)
                path = out_dir / f"{model}_input.json"
                path.write_text(json.dumps(input_data(workload, names)))
                cfg = SweepConfig(
                    url=server.grpc_url,
                    model=model,
                    load_range=str(concurrency),
                    measurement_ms=measurement_ms,
                    max_trials=3,
                )
                point = run_sweep(cfg, path, out_dir, label=f"{model}_r{r}")[0]
                totals[model][0] += point.output_tok_s
                totals[model][1] += point.response_rps
    n = float(rounds)
    return TransportResult(
        totals["dynabatch"][0] / n,
        totals["bare_stream"][0] / n,
        totals["dynabatch"][1] / n,
        totals["bare_stream"][1] / n,
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="scripts/bench_transport", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--out", default="out/transport")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--output-len", type=int, default=256)
    ap.add_argument("--measurement-ms", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--bare-mode",
        choices=("inline", "thread"),
        default="inline",
        help="bare_stream sends from a worker thread (like our model) or from execute()",
    )
    ap.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config.pbtxt parameter for our model (repeatable)",
    )
    args = ap.parse_args(argv)
    extra = dict(p.split("=", 1) for p in args.param)
    t0 = time.monotonic()
    res = run_transport(
        Path(args.out),
        args.concurrency,
        args.prompt_len,
        args.output_len,
        args.measurement_ms,
        args.rounds,
        extra,
        args.bare_mode,
    )
    print(
        f"concurrency {args.concurrency}, {args.prompt_len} prompt / {args.output_len} output tokens, "
        f"{args.rounds} round(s), {time.monotonic() - t0:.0f} s"
    )
    print(
        f"  ours (dynabatch, zero-latency): {res.ours_tok_s:9.0f} tokens/s  ({res.ours_resp_s:.0f} responses/s)"
    )
    print(
        f"  bare_stream ({args.bare_mode}, ceiling):{res.bare_tok_s:9.0f} tokens/s  ({res.bare_resp_s:.0f} responses/s)"
    )
    print(f"  ratio ours / ceiling:           {res.ratio:9.3f}")
    return 0
