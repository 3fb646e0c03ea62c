"""dynabatch fleet: N replicas (each the server's own ServingCore + controller +
simulated executor) behind a router on one virtual clock."""

from __future__ import annotations

import pytest
from dynabatch.bench.metrics import Slo
from dynabatch.bench.runner import run_policy
from dynabatch.cli import main as cli_main
from dynabatch.fleet import sim as fleet_sim
from dynabatch.fleet.replica import ReplicaMetrics
from dynabatch.fleet.routers import (
    ROUTERS,
    GatewayRouter,
    active_request_scores,
    make_router,
    min_max_scores,
    router_stats,
)
from dynabatch.fleet.sim import DEFAULT_POLICY, FleetConfig, SloBroken, run_fleet
from dynabatch.fleet.summary import summarize_capacity
from dynabatch.fleet.workloads import fleet_workload, length_mix

PROFILE = "llama-2-13b-a100-40gb"
SLO = Slo(2.0, 0.1)


def scrape(waiting=0, kv=0.0, limit=8, running=0, queued=0, at=0.0) -> ReplicaMetrics:
    return ReplicaMetrics(
        scraped_at=at,
        waiting=waiting,
        scheduled=running,
        kv_fraction=kv,
        batch_limit=limit,
        running=running,
        queued=queued,
    )


def test_queue_scores_are_min_max_normalised():
    assert min_max_scores([0, 5, 10]) == [1.0, 0.5, 0.0]
    assert min_max_scores([3, 3]) == [1.0, 1.0]


def test_active_request_scores_follow_llm_d():
    # idle pods score 1, busy ones (max - count) / max
    assert active_request_scores([0, 2, 4]) == [1.0, 0.5, 0.0]
    assert active_request_scores([3, 3]) == [0.0, 0.0]


class _Pod:
    """What the routers read from a replica besides its scrape: the picker's in-flight
    count (and, for the oracle, the tokens still to process)."""

    def __init__(self, remaining_tokens: int = 0) -> None:
        self.outstanding = 0
        self.remaining_tokens = remaining_tokens


def _burst(router, scrapes, pods, n, now=0.01):
    """`n` arrivals inside one scrape interval: every pick sees the same scrapes."""
    picks = []
    for _ in range(n):
        k = router.pick(pods, scrapes, now)
        pods[k].outstanding += 1
        picks.append(k)
    return picks


def test_default_gateway_herds_a_burst_and_the_active_request_scorer_spreads_it():
    """Between two scrapes the default profile sees nothing of what it sent: the whole
    burst goes to the pod that looked best. The active-request scorer counts the
    picker's own dispatches and spreads it."""
    scrapes = [scrape(kv=0.10), scrape(kv=0.30), scrape(kv=0.30), scrape(kv=0.30)]
    gateway = make_router("gateway")
    herd = _burst(gateway, scrapes, [_Pod() for _ in range(4)], 8)
    assert herd == [0] * 8
    assert router_stats(gateway) == {"equal_queue_share": 1.0}  # the KV fraction chose
    spread = _burst(make_router("gateway-active"), scrapes, [_Pod() for _ in range(4)], 8)
    assert max(spread.count(k) for k in range(4)) <= 3, spread


def test_headroom_is_spent_on_requests_sent_since_the_scrape():
    router = make_router("gateway-headroom")
    pods = [_Pod(), _Pod()]
    # replica 0 looks best on KV and has room for two more; replica 1 for five
    scrapes = [scrape(kv=0.1, limit=4, running=2), scrape(kv=0.3, limit=8, running=3)]
    assert _burst(router, scrapes, pods, 3) == [0, 0, 1]
    # a new scrape shows replica 0's state again: the count starts over
    rescraped = [scrape(kv=0.1, limit=6, running=4, at=0.05), scrape(kv=0.3, at=0.05)]
    assert router.pick(pods, rescraped, 0.06) == 0


def test_oracle_joins_the_shortest_remaining_work():
    pods = [_Pod(900), _Pod(300), _Pod(500)]
    assert make_router("oracle").pick(pods, [None] * 3, 0.0) == 1


def test_scrapes_after_an_idle_gap_are_fresh(monkeypatch):
    """Arrivals seconds apart: the fleet sits idle in between, and the scrape the picker
    reads is the last one due (at most one interval old), never one older than the
    staleness threshold."""
    ages = []
    real = fleet_sim.make_router

    def recording(name, **kw):
        router = real(name, **kw)
        pick = router.pick

        def pick_and_record(replicas, scrapes, now):
            ages.extend(now - m.scraped_at for m in scrapes)
            return pick(replicas, scrapes, now)

        router.pick = pick_and_record
        return router

    monkeypatch.setattr(fleet_sim, "make_router", recording)
    wl = fleet_workload(length_mix("bimodal"), 12, 0.2, seed=2)  # ~5 s apart
    run_fleet(wl, FleetConfig(2, "gateway", PROFILE, SLO))
    assert ages and max(ages) <= FleetConfig(2, "gateway", PROFILE, SLO).scrape.interval_s


def test_gateway_prefers_short_queue_then_free_kv():
    router = GatewayRouter()
    scrapes = [scrape(waiting=4, kv=0.1), scrape(waiting=0, kv=0.9), scrape(waiting=0, kv=0.2)]
    assert router.pick([None] * 3, scrapes, now=0.01) == 2
    # a lone long queue outweighs a KV difference
    assert router.scores(scrapes, 0.01)[0] < router.scores(scrapes, 0.01)[1]


def test_stale_scrape_scores_as_saturated():
    router = GatewayRouter(staleness_s=0.2)
    scrapes = [scrape(kv=0.0, at=0.0), scrape(kv=0.8, at=0.95)]
    assert router.scores(scrapes, now=1.0)[0] == 0.0
    assert router.pick([None] * 2, scrapes, now=1.0) == 1


def test_headroom_scorer_rewards_a_replica_that_admits_at_once():
    plain, headroom = GatewayRouter(), GatewayRouter(headroom=True)
    # same queue and KV; replica 0 is at its limit, replica 1 has free slots
    scrapes = [scrape(kv=0.5, limit=4, running=4), scrape(kv=0.5, limit=8, running=3)]
    assert plain.scores(scrapes, 0.0)[0] == plain.scores(scrapes, 0.0)[1]
    assert headroom.pick([None] * 2, scrapes, 0.0) == 1


def test_unknown_router_is_named():
    with pytest.raises(ValueError, match="'nearest'"):
        make_router("nearest")


def test_one_replica_fleet_is_the_single_server_benchmark():
    """Same workload through a 1-replica fleet and through `run_policy`: identical
    per-request results, so the fleet adds routing and nothing else."""
    wl = fleet_workload(length_mix("conv"), 80, 0.9, seed=3)
    fleet = run_fleet(wl, FleetConfig(1, "round-robin", PROFILE, SLO))
    single = run_policy(wl, PROFILE, DEFAULT_POLICY, slo=SLO).row
    for key in ("completed", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s"):
        assert fleet[key] == pytest.approx(single[key], rel=1e-12), key


@pytest.mark.parametrize("router", ROUTERS)
def test_every_request_finishes_once_and_kv_returns_to_zero(router):
    wl = fleet_workload(length_mix("bimodal"), 120, 2.0, seed=1)
    row = run_fleet(wl, FleetConfig(3, router, PROFILE, SLO))
    assert row["completed"] == 120 and row["rejected"] == 0
    assert sum(row["routed_per_replica"]) == 120
    assert row["kv_blocks_used_at_end"] == 0
    assert row["tokens_left_at_end"] == 0  # the oracle's work count balances
    if router == "round-robin":
        assert row["routed_per_replica"] == [40, 40, 40]
        assert row["same_replica_in_burst"] == 0.0
    if router == "least-requests":
        assert row["excess_in_flight_mean"] == 0.0


def test_gateway_beats_round_robin_on_a_bimodal_mix():
    """Long and short requests: round-robin stacks long ones on one replica now and
    then, the endpoint picker's scorers see the queue and KV and steer around it."""
    wl = fleet_workload(length_mix("bimodal"), 240, 2.2, seed=0)
    rr = run_fleet(wl, FleetConfig(3, "round-robin", PROFILE, SLO))
    gw = run_fleet(wl, FleetConfig(3, "gateway", PROFILE, SLO))
    assert gw["ttft_p99_s"] < rr["ttft_p99_s"]


def test_on_bursts_the_default_gateway_herds_and_active_requests_spread_the_load():
    """Gamma arrivals (CV 2) through the whole fleet: the default profile sends most
    clumped arrivals to the replica the previous one went to, leaving it more loaded
    than the least-loaded replica; counting its own in-flight requests evens that out
    and shortens the typical TTFT (the clump's prefills no longer share one replica)."""
    wl = fleet_workload(length_mix("bursty"), 300, 3.0, seed=0)
    gw = run_fleet(wl, FleetConfig(4, "gateway", PROFILE, SLO))
    active = run_fleet(wl, FleetConfig(4, "gateway-active", PROFILE, SLO))
    assert gw["same_replica_in_burst"] > 0.8 > 0.4 > active["same_replica_in_burst"]
    assert active["excess_in_flight_mean"] < gw["excess_in_flight_mean"] / 2
    assert active["ttft_p50_s"] < gw["ttft_p50_s"]


def test_capacity_probe_stops_once_the_p99_is_lost():
    overloaded = fleet_workload(length_mix("conv"), 200, 20.0, seed=0)
    with pytest.raises(SloBroken):
        run_fleet(overloaded, FleetConfig(2, "round-robin", PROFILE, SLO), stop_on_slo_miss=True)
    light = fleet_workload(length_mix("conv"), 60, 0.5, seed=0)
    row = run_fleet(light, FleetConfig(2, "round-robin", PROFILE, SLO), stop_on_slo_miss=True)
    assert row["completed"] == 60


def test_summary_pairs_seeds():
    rows = [
        {"workload": "w", "router": r, "replicas": n, "seed": s, "capacity_rps": c}
        for (r, n, s, c) in [
            ("round-robin", 1, 0, 1.0),
            ("round-robin", 1, 1, 2.0),
            ("round-robin", 2, 0, 2.0),
            ("round-robin", 2, 1, 4.0),
            ("gateway", 1, 0, 1.0),
            ("gateway", 1, 1, 2.0),
            ("gateway", 2, 0, 3.0),
            ("gateway", 2, 1, 4.0),
        ]
    ]
    s = {(r["router"], r["replicas"]): r for r in summarize_capacity(rows)}
    assert s["gateway", 2]["vs_round-robin"] == {"median": 1.25, "min": 1.0, "max": 1.5, "seeds": 2}
    assert s["round-robin", 2]["vs_one_replica"]["median"] == 2.0


def test_fleet_command_runs_once_at_a_rate(capsys, tmp_path):
    out = tmp_path / "fleet.json"
    rc = cli_main(
        [
            "fleet",
            "--workload=conv",
            "--replicas=2",
            "--router=gateway",
            "--rate=1.0",
            "--requests-per-replica=20",
            f"--json={out}",
        ]
    )
    assert rc == 0 and out.exists()
    assert "conv gateway N=2" in capsys.readouterr().out


def test_fleet_command_rejects_an_unknown_router(capsys):
    assert cli_main(["fleet", "--router=nearest", "--rate=1"]) == 2
    assert "nearest" in capsys.readouterr().err


def test_fleet_command_summarises_and_plots_earlier_rows(tmp_path, capsys):
    from dynabatch.bench.report import read_json, write_json

    rows = [
        {"workload": "conv", "router": r, "replicas": n, "seed": s, "capacity_rps": c}
        for r in ("round-robin", "gateway")
        for n, c in ((1, 1.0), (2, 2.5))
        for s in (0, 1)
    ] + [
        {"workload": "bimodal", "router": "gateway", "replicas": 4, "seed": 0, "capacity_rps": 3.0}
    ]
    write_json(rows, tmp_path / "rows.json")
    png, merged = tmp_path / "fig.png", tmp_path / "merged.json"
    argv = ["fleet", f"--from-json={tmp_path / 'rows.json'}", f"--plot={png}", f"--json={merged}"]
    assert cli_main(argv) == 0
    assert png.stat().st_size > 0
    assert read_json(merged) == rows

    assert "2.50" in capsys.readouterr().out


def test_fleet_summary_divides_by_the_named_baseline(tmp_path, capsys):
    from dynabatch.bench.report import write_json

    rows = [
        {"workload": "bursty", "router": r, "replicas": 4, "seed": 0, "capacity_rps": c}
        for r, c in (("round-robin", 2.0), ("gateway", 2.5))
    ]
    write_json(rows, tmp_path / "rows.json")
    argv = ["fleet", f"--from-json={tmp_path / 'rows.json'}", "--baseline=gateway"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "x gateway" in out and "0.80 (0.80-0.80)" in out  # round-robin 2.0 / gateway 2.5


def test_fleet_command_names_a_bad_rows_file(tmp_path, capsys):
    bad = tmp_path / "rows.json"
    bad.write_text("not json")
    assert cli_main(["fleet", f"--from-json={bad}"]) == 2
    assert str(bad) in capsys.readouterr().err
