"""Admission orders (fcfs, priority, sjf, fair), aging, tenant limits and tenant stats."""

from __future__ import annotations

import pytest
from dynabatch.config import load_config
from dynabatch.gate import AdmissionGate
from dynabatch.params import ConfigError
from dynabatch.queue_order import (
    FairShareOrder,
    FcfsOrder,
    OutputLengthModel,
    QueueOrderConfig,
    ShortestJobOrder,
    TenantTable,
    make_queue_order,
    parse_tenant_table,
)
from dynabatch.request_mapping import RequestError, tenant_param
from dynabatch.types import GenerationRequest


def req(rid: int, prompt: int = 4, n: int = 8, priority: int = 0, tenant: str = ""):
    return GenerationRequest(
        request_id=rid, prompt_ids=[1] * prompt, max_new_tokens=n, priority=priority, tenant=tenant
    )


def drain(gate: AdmissionGate, now: float = 0.0) -> list[int]:
    out = []
    while (item := gate.admit(now)) is not None:
        out.append(item.request.request_id)
    return out


def test_fcfs_ignores_priority_and_priority_order_uses_it():
    fcfs, prio = AdmissionGate(order=FcfsOrder()), AdmissionGate()
    for rid, p in [(1, 0), (2, 5), (3, 0), (4, 5)]:
        fcfs.offer(req(rid, priority=p), None, 0.0)
        prio.offer(req(rid, priority=p), None, 0.0)
    assert drain(fcfs) == [1, 2, 3, 4]
    assert drain(prio) == [2, 4, 1, 3]


def test_output_length_model_is_the_capped_mean_of_learned_lengths():
    model = OutputLengthModel()
    assert model.expected(100) == 100  # nothing learned yet: the cap
    for length in [10, 20, 30, 40] * 25:
        model.add(length)
    # E[min(L, m)]: m=15 -> 10 for a quarter, 15 for the rest
    assert model.expected(15) == pytest.approx(0.25 * 10 + 0.75 * 15, rel=0.02)
    assert model.expected(41) == pytest.approx(25.0, rel=0.02)  # the mean
    # beyond every sample the survival table's pseudo-count keeps a small tail (a
    # request that outlived all samples may run to its cap): longer caps predict longer
    assert 25.0 < model.expected(1000) < 31.0


def test_sjf_admits_the_shortest_predicted_job_conditioned_on_max_tokens():
    order = ShortestJobOrder()
    for _ in range(100):
        order.on_finish(200, 100)  # answers are about 200 tokens long
    gate = AdmissionGate(order=order)
    gate.offer(req(1, prompt=300, n=1000), None, 0.0)  # ~500 tokens
    gate.offer(req(2, prompt=100, n=1000), None, 0.0)  # ~300 tokens
    gate.offer(req(3, prompt=300, n=20), None, 0.0)  # at most 320: asks for few tokens
    gate.offer(req(4, prompt=50, n=8), None, 0.0)  # ~58
    assert drain(gate) == [4, 2, 3, 1]


def test_fair_share_serves_a_light_tenant_ahead_of_a_heavy_backlog():
    gate = AdmissionGate(order=FairShareOrder())
    for rid in range(1, 11):
        gate.offer(req(rid, prompt=100, tenant="heavy"), None, 0.0)
    assert drain_n(gate, 3) == [1, 2, 3]  # heavy alone: arrival order
    gate.offer(req(100, prompt=100, tenant="light"), None, 1.0)
    gate.offer(req(101, prompt=100, tenant="light"), None, 1.0)
    # light joins at heavy's counter: heavy's oldest goes first (older), then light,
    # then they alternate by tokens served
    assert drain_n(gate, 5) == [4, 100, 5, 101, 6]


def drain_n(gate: AdmissionGate, k: int, now: float = 0.0) -> list[int]:
    return [gate.admit(now).request.request_id for _ in range(k)]


def test_fair_share_counts_output_tokens_and_weights():
    order = FairShareOrder(TenantTable({"gold": 2.0}, 1.0))
    gate = AdmissionGate(order=order)
    for rid in range(40):
        gate.offer(req(rid, prompt=10, tenant="gold"), None, 0.0)
        gate.offer(req(1000 + rid, prompt=10, tenant="free"), None, 0.0)
    served = {"gold": 0, "free": 0}
    for _ in range(30):
        item = gate.admit(0.0)
        tenant = item.request.tenant
        served[tenant] += 1
        gate.on_tokens(item.request.request_id, 5)  # 10 prompt + 2 x 5 output = 20
    # weight 2: gold gets twice free's share of virtual tokens
    assert served == {"gold": 20, "free": 10}
    assert gate.tenants["gold"].output_tokens == 100 and gate.tenants["free"].admitted == 10


def test_fair_share_idle_tenant_banks_no_credit():
    order = FairShareOrder()
    gate = AdmissionGate(order=order)
    for rid in range(20):
        gate.offer(req(rid, prompt=100, tenant="a"), None, 0.0)
    drain_n(gate, 15)  # a: counter 1500 while b is idle
    for rid in range(100, 110):
        gate.offer(req(rid, prompt=100, tenant="b"), None, 0.0)
    # without the lift b would take the next 15 admissions
    assert order.counters["b"] == order.counters["a"]
    assert drain_n(gate, 4) == [15, 100, 16, 101]


def test_tenant_over_its_queue_limit_is_refused_others_admitted():
    limits = parse_tenant_table(
        "tenant_max_queue_size", "free:2,*:5", default=0, integer=True, minimum=0
    )
    gate = AdmissionGate(max_queue_size=100, tenant_queue_limits=limits)
    assert gate.offer(req(1, tenant="free"), None, 0.0) is None
    assert gate.offer(req(2, tenant="free"), None, 0.0) is None
    refusal = gate.offer(req(3, tenant="free"), None, 0.0)
    assert refusal and "tenant 'free'" in refusal and "tenant_max_queue_size=2" in refusal
    for rid in range(10, 15):
        assert gate.offer(req(rid, tenant="paid"), None, 0.0) is None
    assert "tenant_max_queue_size=5" in gate.offer(req(15, tenant="paid"), None, 0.0)
    assert gate.tenants["free"].rejected == 1 and gate.tenants["free"].queued == 2
    gate.admit(0.0)  # free's request 1 leaves the queue: free may queue one more
    assert gate.offer(req(4, tenant="free"), None, 0.0) is None


def test_aging_admits_the_oldest_waiting_request_first():
    gate = AdmissionGate(order=ShortestJobOrder(), aging_s=5.0)
    gate.offer(req(1, prompt=4000), None, 0.0)
    gate.offer(req(2, prompt=10), None, 1.0)
    gate.offer(req(3, prompt=10), None, 2.0)
    assert gate.admit(4.9).request.request_id == 2  # not aged yet: shortest first
    assert gate.admit(5.0).request.request_id == 1  # aged: before the later, shorter 3
    assert gate.admit(5.0).request.request_id == 3


def test_queue_order_parameters_parse_and_fail_clearly():
    cfg = load_config(
        {
            "queue_policy": "fair",
            "queue_aging_ms": "2500",
            "tenant_weights": "gold:4, *:0.5",
            "tenant_max_queue_size": "free:16",
        }
    ).queue_order
    assert cfg.policy == "fair" and cfg.aging_s == 2.5
    assert cfg.weights.get("gold") == 4 and cfg.weights.get("other") == 0.5
    assert cfg.tenant_queue_limits.get("free") == 16 and cfg.tenant_queue_limits.get("x") == 0
    assert isinstance(make_queue_order(cfg), FairShareOrder)
    for raw, name in [
        ({"queue_policy": "lifo"}, "queue_policy"),
        ({"tenant_weights": "gold"}, "tenant_weights"),
        ({"tenant_weights": "gold:0"}, "tenant_weights"),
        ({"tenant_max_queue_size": "free:1.5"}, "tenant_max_queue_size"),
        ({"tenant_max_queue_size": "a:1,a:2"}, "tenant_max_queue_size"),
    ]:
        with pytest.raises(ConfigError, match=f"'{name}'"):
            load_config(raw)
    assert QueueOrderConfig().policy == "priority"


def test_tenant_request_parameter_is_checked():
    assert tenant_param({}) == "" and tenant_param({"tenant": "team-a@x"}) == "team-a@x"
    # the OpenAI frontend forwards the API's `user` field; `tenant` wins when both come
    assert tenant_param({"user": "team-b"}) == "team-b"
    assert tenant_param({"user": "team-b", "tenant": "t"}) == "t"
    assert tenant_param({"user": "John Doe"}) == "John Doe"
    with pytest.raises(RequestError, match="request parameter 'user' \\(the tenant\\)"):
        tenant_param({"user": "   "})
    for bad in ["", "  ", "x" * 65, 7, None, "tab\there", "line\nbreak"]:
        with pytest.raises(RequestError, match="request parameter 'tenant'"):
            tenant_param({"tenant": bad})
