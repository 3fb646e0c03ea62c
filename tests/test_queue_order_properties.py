"""Property tests: aging bounds every request's wait (fcfs, priority, sjf), and under
`fair` no request is overtaken by a later request of its own tenant once it has aged.

The stated bound (docs/ADMISSION.md): with c slots that each free within S seconds of
being filled, a request r arriving at a_r is admitted by

    a_r + A + S * ceil((k + 1) / c)

where A is the aging bound and k the number of requests that arrived before r and were
still waiting at a_r + A. (Once r has waited A it is only overtaken by older requests,
and every S seconds at least c requests are admitted.) Without aging, `sjf` and
`priority` break it: a stream of short or urgent requests starves a long one.
"""

from __future__ import annotations

import heapq
import math

from dynabatch.gate import AdmissionGate
from dynabatch.queue_order import (
    VTC_INPUT_WEIGHT,
    VTC_OUTPUT_WEIGHT,
    QueueOrderConfig,
    make_queue_order,
)
from dynabatch.types import GenerationRequest
from hypothesis import example, given, settings
from hypothesis import strategies as st

SLOTS_MAX, SERVICE_MAX = 3, 2.0

arrival = st.tuples(
    st.floats(0.0, 0.6),  # gap since the previous arrival (s): the queue builds up
    st.floats(1.0, SERVICE_MAX),  # how long it holds a slot (s)
    st.integers(1, 4000),  # prompt tokens
    st.integers(1, 1024),  # max tokens
    st.integers(0, 3),  # priority
    st.sampled_from(["a", "b", "c"]),  # tenant
)


def simulate(order_name: str, aging_s: float, slots: int, arrivals: list, log=None):
    """Event-driven slot server in front of the gate: (waits, arrivals, admit times).
    `log` (a list) receives (admitted tenant, its VTC cost, tenants then waiting) per
    admission; the request's tokens are all charged when it is admitted."""
    gate = AdmissionGate(
        order=make_queue_order(QueueOrderConfig(policy=order_name)), aging_s=aging_s
    )
    t, pending = 0.0, []
    for rid, (gap, service, prompt, max_new, prio, tenant) in enumerate(arrivals):
        t += gap
        pending.append((t, rid, service, prompt, max_new, prio, tenant))
    admitted: dict[int, float] = {}
    running: list[tuple[float, int, int]] = []  # (finish time, id, tokens)
    i, now = 0, 0.0
    service_of = {p[1]: p[2] for p in pending}
    while i < len(pending) or len(gate) or running:
        next_arrival = pending[i][0] if i < len(pending) else math.inf
        next_finish = running[0][0] if running else math.inf
        now = min(next_arrival, next_finish)
        while running and running[0][0] <= now:
            _, rid, tokens = heapq.heappop(running)
            gate.on_finish(rid, tokens, 1)
        while i < len(pending) and pending[i][0] <= now:
            at, rid, _, prompt, max_new, prio, tenant = pending[i]
            request = GenerationRequest(
                rid, [1] * prompt, max_new, priority=prio, tenant=tenant, arrival_time=at
            )
            assert gate.offer(request, None, at) is None
            i += 1
        while len(running) < slots:
            waiting = {t for t, stats in gate.tenants.items() if stats.queued}
            item = gate.admit(now)
            if item is None:
                break
            rid = item.request.request_id
            admitted[rid] = now
            tokens = min(item.request.max_new_tokens, 1 + rid % 300)
            if log is not None:
                cost = VTC_INPUT_WEIGHT * item.request.prompt_len + VTC_OUTPUT_WEIGHT * tokens
                log.append((item.request.tenant, cost, waiting))
            gate.on_tokens(rid, tokens, now - item.enqueue_time)
            heapq.heappush(running, (now + service_of[rid], rid, tokens))
    assert sorted(admitted) == list(range(len(arrivals)))  # everyone, exactly once
    return {rid: admitted[rid] - pending[rid][0] for rid in admitted}, pending, admitted


def wait_bound(rid: int, aging_s: float, slots: int, pending: list, admitted: dict) -> float:
    """The stated bound for request `rid` (ids are in arrival order, as the gate's)."""
    t_aged = pending[rid][0] + aging_s
    older_waiting = sum(1 for o in range(rid) if admitted[o] >= t_aged)
    return aging_s + SERVICE_MAX * math.ceil((older_waiting + 1) / slots)


@settings(max_examples=60, deadline=None)
@given(
    order=st.sampled_from(["fcfs", "priority", "sjf"]),
    aging_s=st.floats(0.5, 5.0),
    slots=st.integers(1, SLOTS_MAX),
    arrivals=st.lists(arrival, min_size=1, max_size=60),
)
def test_no_request_waits_past_the_aging_bound(order, aging_s, slots, arrivals):
    waits, pending, admitted = simulate(order, aging_s, slots, arrivals)
    for rid, wait in waits.items():
        bound = wait_bound(rid, aging_s, slots, pending, admitted)
        assert wait <= bound + 1e-9, (rid, wait, bound)


@settings(max_examples=40, deadline=None)
@given(
    aging_s=st.floats(0.5, 5.0),
    slots=st.integers(1, SLOTS_MAX),
    arrivals=st.lists(arrival, min_size=1, max_size=60),
)
def test_fair_share_ages_within_each_tenant(aging_s, slots, arrivals):
    waits, pending, admitted = simulate("fair", aging_s, slots, arrivals)
    for rid in waits:
        at, tenant = pending[rid][0], pending[rid][6]
        overtakers = [
            o
            for o in range(rid + 1, len(pending))
            if pending[o][6] == tenant and admitted[rid] > admitted[o] >= at + aging_s
        ]
        assert not overtakers, (rid, overtakers)


@settings(max_examples=60, deadline=None)
@given(
    aging_s=st.floats(0.5, 5.0),
    slots=st.integers(1, SLOTS_MAX),
    arrivals=st.lists(arrival, min_size=1, max_size=60),
)
# `b` idles while `a` is served, then floods: without the counter lift it would take
# every place until its counter caught up with a's (credit banked while idle)
@example(
    aging_s=5.0,
    slots=1,
    arrivals=[(0.0, 1.0, 100, 100, 0, "b")]
    + [(0.0, 1.0, 100, 100, 0, "a")] * 15
    + [(4.5, 1.0, 100, 100, 0, "b")]
    + [(0.0, 1.0, 100, 100, 0, "b")] * 9,
)
def test_fair_share_starves_no_tenant(aging_s, slots, arrivals):
    """Across tenants, `fair` bounds how much service the others get while a tenant
    waits: while tenant T has requests waiting and none admitted, every other tenant is
    admitted only while its virtual token counter is at most T's, so it receives at
    most 2 * C_max of virtual tokens, C_max the largest cost of one request (prompt x 1
    + output x 2; weights 1), the bound of Sheng et al.'s VTC. With aging inside each
    tenant this bounds every request's wait: nobody starves."""
    log: list = []
    simulate("fair", aging_s, slots, arrivals, log)
    bound = 2 * max(cost for _, cost, _ in log)
    for tenant in {t for t, _, _ in log}:
        served_meanwhile: dict[str, float] = {}  # others' service since T last got a turn
        for admitted, cost, waiting in log:
            if admitted == tenant or tenant not in waiting:
                served_meanwhile.clear()
                continue
            served_meanwhile[admitted] = served_meanwhile.get(admitted, 0.0) + cost
            assert served_meanwhile[admitted] <= bound, (tenant, admitted, served_meanwhile)


def test_without_aging_sjf_starves_a_long_request():
    # one long prompt first, then a steady stream of short ones that keeps the slot busy
    arrivals = [(0.0, 1.0, 4000, 8, 0, "a"), (0.0, 1.0, 10, 8, 0, "a")]
    arrivals += [(0.9, 1.0, 10, 8, 0, "a")] * 40
    waits_no_aging, pending, admitted = simulate("sjf", 0.0, 1, arrivals)
    assert waits_no_aging[0] > 30  # served last
    waits, pending, admitted = simulate("sjf", 3.0, 1, arrivals)
    assert waits[0] <= wait_bound(0, 3.0, 1, pending, admitted) and waits[0] < 5
