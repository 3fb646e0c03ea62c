"""What the fleet's endpoint picker sees of each replica, and when: the iteration stats
TensorRT-LLM reports while an iteration runs (recorded at its launch), the pod's gauge
refresh (dynabatch's metrics_interval_ms) and the picker's own per-pod ticker."""

from __future__ import annotations

from dataclasses import replace

import pytest
from dynabatch.bench.metrics import RequestRecord
from dynabatch.bench.runner import _Sink
from dynabatch.engines.simulated.executor import SimulatedExecutor
from dynabatch.fleet.replica import Replica, ReplicaMetrics
from dynabatch.fleet.scrape import ScrapeClock, ScrapeConfig
from dynabatch.fleet.sim import DEFAULT_POLICY
from dynabatch.types import GenerationRequest

PROFILE = "llama-2-13b-a100-40gb"


def request(rid: int, prompt: int, out: int = 8, at: float = 0.0) -> GenerationRequest:
    return GenerationRequest(
        request_id=rid, prompt_ids=[1] * prompt, max_new_tokens=out, arrival_time=at
    )


def replica() -> Replica:
    return Replica(
        0, PROFILE, DEFAULT_POLICY, max_batch_size=256, controller_params={"tpot_sla_ms": 100.0}
    )


def route(r: Replica, req: GenerationRequest) -> None:
    r.route(req, _Sink(RequestRecord(arrival=req.arrival_time, prompt_tokens=req.prompt_len)))


def test_launch_stats_count_unfetched_requests_and_the_scheduled_prompts_blocks():
    """TensorRT-LLM fetches queued requests into its active list, schedules what fits
    and allocates each new context's blocks for the whole prompt, then records the
    stats: `queued` is only what did not fit in the active list; an active request the
    token budget left out this iteration is active, not queued."""
    engine = SimulatedExecutor(PROFILE, max_batch_size=2, max_num_tokens=640, tokens_per_block=64)
    for rid, prompt in ((1, 640), (2, 64), (3, 64)):
        engine.submit(request(rid, prompt))
    engine.step()
    launch = engine.launch_stats
    assert launch is not None
    assert (launch.num_active_requests, launch.num_queued_requests) == (2, 1)
    assert (launch.num_scheduled_requests, launch.num_context_requests) == (1, 1)
    assert launch.used_num_blocks == 10  # 640 prompt tokens / 64 per block
    assert launch.timestamp == 0.0  # recorded when the iteration started


def test_a_scrape_during_the_first_prefill_shows_its_kv_blocks():
    """While a long prefill runs, a real pod already reports its blocks (allocated at
    launch); the serving core has seen no stats yet (they come when it ends)."""
    r = replica()
    route(r, request(1, 3000, out=50))
    assert r.scrape(0.0).kv_fraction == 0.0
    r.run_pass()
    assert r.core.last_stats is None
    mid = r.scrape(r.now() / 2)
    assert mid.scheduled == 1
    blocks = r.engine.kv_capacity.total_blocks
    assert mid.kv_fraction == pytest.approx(r.engine.blocks.blocks_for(3000) / blocks)


def test_dynabatchs_admission_queue_counts_as_waiting():
    """A request the controller holds back waits in dynabatch's gate: the waiting gauge
    counts it, although the engine never saw it."""
    r = replica()
    limit = r.controller.limit
    for k in range(limit + 2):
        route(r, request(k + 1, 256))
    m = r.scrape(0.0)
    assert m.queued == 2
    assert m.waiting == 2


class _Pod:
    """A replica whose exported state a test sets by hand."""

    def __init__(self) -> None:
        self.kv = 0.0
        self.reads: list[float] = []

    def scrape(self, t: float) -> ReplicaMetrics:
        self.reads.append(t)
        return ReplicaMetrics(t, 0, 0, self.kv, 8, 0, 0, gauges_at=t)


def test_the_picker_reads_gauges_as_of_the_pods_last_refresh():
    """Gauges refresh every 100 ms, the picker reads every 50 ms: a change right after
    a refresh reaches the picker only with the next refresh."""
    pod = _Pod()
    cfg = ScrapeConfig(interval_s=0.05, metrics_interval_s=0.1, spread_phases=False)
    clock = ScrapeClock([pod], cfg, seed=0)
    clock.advance(0.101)  # refresh and read at 0.10
    pod.kv = 0.5
    clock.advance(0.151)  # read at 0.15: the 0.10 refresh
    view = clock.views[0]
    assert view is not None
    assert (view.kv_fraction, view.scraped_at, view.gauges_at) == pytest.approx((0.0, 0.15, 0.1))
    clock.advance(0.201)  # refresh at 0.20, read at 0.20
    view = clock.views[0]
    assert view is not None
    assert (view.kv_fraction, view.gauges_at) == pytest.approx((0.5, 0.2))


def test_a_read_before_a_refresh_in_the_same_gap_sees_the_older_gauges():
    """Nothing happens between two fleet events, but the ticks inside one gap still
    keep their order: a read at 0.14 sees the 0.10 refresh, not the one at 0.20."""
    pod = _Pod()
    cfg = ScrapeConfig(interval_s=0.07, metrics_interval_s=0.1, spread_phases=False)
    clock = ScrapeClock([pod], cfg, seed=0)
    clock.advance(0.101)  # read at 0.07, refresh at 0.10
    pod.kv = 0.5
    clock.advance(0.205)  # read at 0.14, then refresh at 0.20
    view = clock.views[0]
    assert view is not None
    assert (view.kv_fraction, view.scraped_at, view.gauges_at) == pytest.approx((0.0, 0.14, 0.1))
    clock.advance(0.211)  # read at 0.21: the 0.20 refresh
    view = clock.views[0]
    assert view is not None and view.kv_fraction == 0.5


def test_live_gauges_are_read_at_every_picker_tick():
    pod = _Pod()
    clock = ScrapeClock([pod], ScrapeConfig(metrics_interval_s=0.0, spread_phases=False), 0)
    clock.advance(0.051)
    pod.kv = 0.5
    clock.advance(0.101)
    view = clock.views[0]
    assert view is not None and view.kv_fraction == 0.5


def test_each_pod_is_read_on_its_own_phase_fixed_by_the_seed():
    pods = [_Pod() for _ in range(4)]
    cfg = ScrapeConfig()
    clock = ScrapeClock(pods, cfg, seed=3)
    clock.advance(1.0)
    stamps = [v.scraped_at for v in clock.views if v is not None]
    assert len(set(stamps)) == 4  # not all at the same instant
    assert all(1.0 - cfg.interval_s < s <= 1.0 for s in stamps)
    again = ScrapeClock([_Pod() for _ in range(4)], cfg, seed=3)
    again.advance(1.0)
    assert [v.scraped_at for v in again.views if v] == stamps
    other = ScrapeClock([_Pod() for _ in range(4)], cfg, seed=4)
    other.advance(1.0)
    assert [v.scraped_at for v in other.views if v] != stamps
    aligned = ScrapeClock(pods, replace(cfg, spread_phases=False), seed=3)
    aligned.advance(1.0)
    assert len({v.scraped_at for v in aligned.views if v}) == 1  # all at one instant


def test_a_bad_metrics_interval_is_named():
    with pytest.raises(ValueError, match="metrics interval"):
        ScrapeClock([_Pod()], ScrapeConfig(metrics_interval_s=-1.0), 0)
