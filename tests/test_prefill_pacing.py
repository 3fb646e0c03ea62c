"""Prefill pacing: adaptive publishes a prompt-token allowance per iteration from its
step-latency fit; the serving core spends it on admissions (core.PrefillCredit)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dynabatch.bench.metrics import Slo, meets_slo_percentile
from dynabatch.bench.runner import MAXU, PolicySpec, run_policy
from dynabatch.bench.workload import load_trace, resample
from dynabatch.controller import make_controller
from dynabatch.controller.base import UNPACED
from dynabatch.core import PrefillCredit, ServingCore
from dynabatch.engines.base import KvCapacity
from dynabatch.gate import AdmissionGate
from dynabatch.types import ControlInput, RequestState
from stats_builder import iteration_stats
from test_core import FixedLimit, OneTokenEngine, Recorder, req


@dataclass
class PacedLimit(FixedLimit):
    prefill_tokens_per_step: float = UNPACED


def admissions_per_pass(core: ServingCore, engine: OneTokenEngine, passes: int) -> list[int]:
    counts = []
    for _ in range(passes):
        before = len(engine.submitted)
        core.step()
        counts.append(len(engine.submitted) - before)
        engine.step()
    return counts


def start_decoding(core: ServingCore, engine: OneTokenEngine, sink: Recorder) -> None:
    """One long request admitted and past its first token: its TPOT now runs."""
    core.submit(req(100, n=100, prompt=4), sink)
    core.step()
    engine.step()
    core.step()
    assert core.decoding == 1


def test_core_spreads_prompts_by_the_controllers_allowance():
    # 100 prompt tokens per iteration, prompts of 250, one request decoding: one
    # admission, then the debt (-150) is paid over two iterations before the next
    engine = OneTokenEngine()
    core = ServingCore(engine, PacedLimit(64, prefill_tokens_per_step=100.0), AdmissionGate())
    sink = Recorder()
    start_decoding(core, engine, sink)
    engine.step()
    for rid in range(4):
        core.submit(req(rid, n=30, prompt=250), sink)
    counts = admissions_per_pass(core, engine, 12)
    assert sum(counts) == 4 and max(counts) == 1
    starts = [k for k, c in enumerate(counts) if c]
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [2, 3, 2]  # 2.5 each


def test_unpaced_controller_admits_the_whole_burst_at_once():
    engine = OneTokenEngine()
    core = ServingCore(engine, PacedLimit(64), AdmissionGate())
    sink = Recorder()
    start_decoding(core, engine, sink)
    engine.step()
    for rid in range(4):
        core.submit(req(rid, n=30, prompt=250), sink)
    assert admissions_per_pass(core, engine, 2) == [4, 0]


def test_a_burst_into_an_engine_with_nothing_decoding_goes_at_once():
    # no request decodes, so no TPOT to protect: the burst is prefilled together (paced,
    # its prompts would land in the decode steps of the ones admitted first)
    engine = OneTokenEngine()
    core = ServingCore(engine, PacedLimit(64, prefill_tokens_per_step=0.0), AdmissionGate())
    sink = Recorder()
    for rid in range(3):
        core.submit(req(rid, n=3, prompt=500), sink)
    assert admissions_per_pass(core, engine, 1) == [3]
    # once they decode, a newcomer waits for credit (none here) until they finish, and
    # every request gets exactly one final response
    core.submit(req(9, n=2, prompt=500), sink)
    counts = admissions_per_pass(core, engine, 8)
    assert counts[:2] == [0, 0] and sum(counts) == 1
    assert all(sink.final(rid).finish_reason is not None for rid in (0, 1, 2, 9))


def test_credit_is_one_iteration_deep():
    credit = PrefillCredit()
    credit.follow(100.0)
    assert credit.balance == 100.0
    for _ in range(5):  # idle iterations do not bank a burst
        credit.refill(100.0)
    assert credit.balance == 100.0
    credit.spend(400)
    credit.refill(100.0)
    assert credit.balance == -200.0 and not credit.open
    credit.follow(UNPACED)
    assert credit.open and credit.balance == math.inf


def paced_adaptive(**params):
    return make_controller(
        "adaptive",
        {"tpot_sla_ms": 20.0, "ttft_sla_s": 2.0, "prefill_pacing": True, **params},
        max_batch_size=256,
        kv_capacity=KvCapacity(100_000, 16),
    )


def feed_fit(ctl, steps: int = 3000) -> float:
    """Step latency 8 + 0.2 n + 20 x ms (x: prefill tokens in thousands)."""
    t = 0.0
    for k in range(steps):
        n, ctx = 5 + k % 7, (k % 5) * 100
        latency = 8.0 + 0.2 * n + 20.0 * ctx / 1000.0
        t += latency / 1000.0
        s = iteration_stats(t=t, total=100_000, latency=latency, gen=n, num_ctx_tokens=ctx)
        ctl.update(ControlInput(s, 0, 0.0, {}))
    return t


def running(n: int) -> dict[int, RequestState]:
    return {i: RequestState(i, 100, 100, 0.0, 0.0, generated=10) for i in range(n)}


def test_adaptive_allowance_keeps_the_predicted_step_within_the_tpot_slo():
    ctl = paced_adaptive()
    t = feed_fit(ctl)
    s = iteration_stats(t=t + 0.01, total=100_000, latency=10.0, gen=10)
    ctl.update(ControlInput(s, 3, 0.1, running(10)))
    # (20 - 8 - 0.2 * 10) / 20 ms per 1000 tokens = 500 tokens per iteration
    assert abs(ctl.prefill_tokens_per_step - 500.0) < 5.0


def test_a_request_per_iteration_once_the_queue_head_waited_a_quarter_of_the_ttft():
    ctl = paced_adaptive()
    t = feed_fit(ctl)
    s = iteration_stats(t=t + 0.01, total=100_000, latency=10.0, gen=10)
    ctl.update(ControlInput(s, 3, 0.6, running(10), waiting_head=[(3000, 64)]))  # 0.6 > 2 / 4
    assert ctl.prefill_tokens_per_step == 3000.0  # the head's prompt: it goes next iteration
    ctl.update(ControlInput(s, 3, 0.4, running(10), waiting_head=[(3000, 64)]))
    assert abs(ctl.prefill_tokens_per_step - 500.0) < 5.0


def test_pacing_off_by_parameter_publishes_no_allowance():
    ctl = paced_adaptive(prefill_pacing=False)
    feed_fit(ctl, 500)
    assert ctl.prefill_tokens_per_step == UNPACED


def test_pacing_holds_p99_tpot_under_a_tight_slo_through_the_benchmark_path():
    # The benchmark drives the same core, gate and controller as the server: the
    # conversation trace's lengths on llama-3-8b-h100 under 2 s / 12 ms (the grid's
    # `tight` level), one 600-request probe at 5.2 req/s. Unpaced, the steps that carry
    # several prompts at once push P99 TPOT past 12 ms (12.5 ms); paced, it holds.
    slo = Slo(2.0, 0.012)
    wl = resample(load_trace("conv"), 600, 5.2, seed=0)
    rows = {}
    for pacing in (False, True):
        spec = PolicySpec("adaptive", "adaptive", MAXU, (("prefill_pacing", pacing),))
        rows[pacing] = run_policy(wl, "llama-3-8b-h100", spec, slo=slo).row
    tpot = {k: round(r["tpot_p99_s"] * 1000, 2) for k, r in rows.items()}
    assert tpot[True] < tpot[False], tpot
    assert meets_slo_percentile(rows[True], slo) and not meets_slo_percentile(rows[False], slo)


def test_no_pacing_when_decode_alone_misses_the_slo():
    # 8 + 0.2 * 70 = 22 ms > 20 ms before any prefill: no allowance would meet the SLO
    ctl = paced_adaptive()
    t = feed_fit(ctl)
    s = iteration_stats(t=t + 0.01, total=100_000, latency=22.0, gen=70)
    ctl.update(ControlInput(s, 3, 0.1, running(70)))
    assert ctl.prefill_tokens_per_step == UNPACED
