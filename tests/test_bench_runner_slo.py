"""The benchmark configures each controller with the run's SLO, as a deployment would."""

import dynabatch.controller as controller_pkg
from dynabatch.bench.metrics import Slo
from dynabatch.bench.runner import MAXU, PolicySpec, run_policy
from dynabatch.bench.workload import synthetic


def test_controller_gets_the_runs_ttft_and_tpot_slo(monkeypatch):
    seen = {}
    real = controller_pkg.make_controller

    def spy(policy, params, **kw):
        seen.update(params)
        return real(policy, params, **kw)

    monkeypatch.setattr(controller_pkg, "make_controller", spy)
    wl = synthetic(5, 2.0, seed=1, max_new_tokens=16)
    run_policy(wl, "llama-3-8b-h100", PolicySpec("adaptive", "adaptive", MAXU), slo=Slo(0.5, 0.03))
    assert seen["ttft_sla_s"] == 0.5 and seen["tpot_sla_ms"] == 30.0
