"""Prefill pacing beside the admission order: under `fair` a tenant does not wait for the
prefill debt another tenant's long prompt made (PrefillCredit.may_borrow), and the gate
never passes the engine more prompt tokens per iteration than its build prefills
(ServingCore._prefill_allowance)."""

from __future__ import annotations

from dataclasses import replace

from dynabatch.core import PrefillCredit, ServingCore
from dynabatch.gate import AdmissionGate
from dynabatch.queue_order import FairShareOrder, FcfsOrder, QueueOrder
from dynabatch.types import GenerationRequest
from test_core import OneTokenEngine, Recorder, req
from test_prefill_pacing import PacedLimit, admissions_per_pass, start_decoding


def tenant_req(rid: int, tenant: str, prompt: int, n: int = 30) -> GenerationRequest:
    return replace(req(rid, n=n, prompt=prompt), tenant=tenant)


def light_waits_behind_heavy_debt(order: QueueOrder) -> tuple[int, int, ServingCore]:
    """100 prompt tokens per iteration; the heavy tenant's 1000-token prompt leaves a debt
    of nine iterations, its next request waits; then a light request arrives. Returns
    the passes until the light request and the heavy one were admitted."""
    engine, sink = OneTokenEngine(), Recorder()
    core = ServingCore(
        engine, PacedLimit(64, prefill_tokens_per_step=100.0), AdmissionGate(order=order)
    )
    start_decoding(core, engine, sink)
    engine.step()
    core.submit(tenant_req(1, "heavy", 1000), sink)
    core.submit(tenant_req(2, "heavy", 1000), sink)
    core.step()
    assert 1 in core.running and 2 in core.gate
    engine.step()
    core.submit(tenant_req(3, "light", 50), sink)
    admitted_at: dict[int, int] = {}
    for k in range(1, 30):
        core.step()
        for rid in (2, 3):
            if rid in core.running and rid not in admitted_at:
                admitted_at[rid] = k
        engine.step()
    return admitted_at[3], admitted_at[2], core


def test_under_fair_a_tenant_that_made_no_debt_goes_before_it_is_paid():
    light, heavy, core = light_waits_behind_heavy_debt(FairShareOrder())
    # the light request went at the next pass, while the heavy tenant's own next
    # request still waited for its debt
    assert light == 1 < heavy
    assert heavy >= 8  # ~9 iterations of debt (plus the light prompt's 50 tokens)


def test_under_fcfs_nobody_borrows():
    light, heavy, _ = light_waits_behind_heavy_debt(FcfsOrder())
    assert light > heavy >= 8


def test_a_tenant_borrows_once_per_debt():
    credit = PrefillCredit()
    credit.follow(100.0)
    credit.spend(60, "light")  # within the balance: no debt yet
    credit.spend(1000, "heavy")  # spends the last of it: the debt is the heavy tenant's
    assert credit.debtors == {"heavy"} and not credit.open
    assert credit.may_borrow("light") and not credit.may_borrow("heavy")
    credit.spend(50, "light")  # the light tenant borrows: now it owes too
    assert not credit.may_borrow("light") and credit.may_borrow("other")
    for _ in range(11):  # the debt is paid back over the iterations
        credit.refill(100.0)
    assert credit.open
    credit.spend(500, "other")  # a new debt, made by "other" alone
    assert credit.debtors == {"other"} and credit.may_borrow("heavy")


class BuiltEngine(OneTokenEngine):
    """An engine whose build prefills at most 300 tokens per iteration (decode included)."""

    max_num_tokens = 300


def test_the_gate_passes_no_more_prompt_tokens_than_one_iteration_prefills():
    # the controller would allow 10 000 prompt tokens per iteration; the build takes
    # 300 per iteration, one of them for the decoding request: 299 of prompts
    engine, sink = BuiltEngine(), Recorder()
    core = ServingCore(engine, PacedLimit(64, prefill_tokens_per_step=10_000.0), AdmissionGate())
    start_decoding(core, engine, sink)
    engine.step()
    for rid in range(4):
        core.submit(req(rid, n=30, prompt=250), sink)
    counts = admissions_per_pass(core, engine, 6)
    # 299: the first two go (the second on the 49 left), the debt then spaces the rest
    assert counts[0] == 2 and sum(counts) == 4 and max(counts[1:]) == 1


def test_an_unpaced_controller_stays_unpaced_whatever_the_build():
    engine, sink = BuiltEngine(), Recorder()
    core = ServingCore(engine, PacedLimit(64), AdmissionGate())
    start_decoding(core, engine, sink)
    engine.step()
    for rid in range(4):
        core.submit(req(rid, n=30, prompt=250), sink)
    assert admissions_per_pass(core, engine, 1) == [4]
