"""One replica of the fleet and the metrics a scraper reads from it.

A replica is exactly what one Triton pod runs: a SimulatedExecutor on its own virtual
clock, the controller of the configured policy, an AdmissionGate and a ServingCore.
Its exported values come from the readers `metrics.py` uses for `/metrics`, fed with the
iteration stats a TensorRT-LLM executor would report at that instant (those of the
iteration in flight, recorded at its launch), so a router that follows them reads what
the endpoint picker would scrape from a real pod. When the pod refreshes its gauges and
when the picker reads them is `scrape.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bench.runner import PolicySpec, make_engine, make_policy_controller
from ..core import ResponseSink, ServingCore
from ..gate import AdmissionGate
from ..metrics import TRTLLM_FAMILIES, exported_stats
from ..types import GenerationRequest

REQUEST_FAMILY = "nv_trt_llm_request_metrics"
KV_FAMILY = "nv_trt_llm_kv_cache_block_metrics"


@dataclass(frozen=True)
class ReplicaMetrics:
    """One scrape of a replica's /metrics, reduced to what the routers read."""

    scraped_at: float  # fleet time the picker read the pod's /metrics (simulated seconds)
    waiting: int  # nv_trt_llm_request_metrics{request_type="waiting"}
    scheduled: int  # nv_trt_llm_request_metrics{request_type="scheduled"}
    kv_fraction: float  # nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}
    batch_limit: int  # dynabatch_batch_limit
    running: int  # dynabatch_running_requests
    queued: int  # dynabatch_queue_length
    # fleet time the pod last refreshed these gauges (dynabatch sets them every
    # metrics_interval_ms, so the picker may read values older than its own scrape)
    gauges_at: float = 0.0

    @property
    def headroom(self) -> int:
        """dynabatch_batch_limit minus the requests it holds, running or queued: > 0
        means a new request is admitted at once. Both gauges are the serving core's own
        counts, fresh between iterations, unlike the iteration stats behind the
        nv_trt_llm_* series, which stand still while a long prefill runs."""
        return self.batch_limit - self.running - self.queued


def request_tokens(request: GenerationRequest) -> int:
    """Prompt plus the output the simulated engine will really generate."""
    out = request.max_new_tokens
    if request.true_output_len is not None:
        out = min(out, request.true_output_len)
    return request.prompt_len + out


class Replica:
    def __init__(
        self,
        index: int,
        profile: str,
        spec: PolicySpec,
        *,
        max_batch_size: int,
        controller_params: dict,
    ) -> None:
        self.index = index
        self.engine = make_engine(
            profile,
            capacity_policy=spec.capacity_policy,
            max_batch_size=max_batch_size,
            engine_kw={},
        )
        self.controller = make_policy_controller(
            spec,
            controller_params,
            max_batch_size=max_batch_size,
            engine=self.engine,
            admission_order=[],
        )
        self.core = ServingCore(self.engine, self.controller, AdmissionGate())
        self.outstanding = 0  # routed and not finished: what a load balancer counts
        # Tokens still to process over the routed requests (prompts not yet prefilled plus
        # outputs not yet generated, at their true lengths): only the oracle reads it.
        self.remaining_tokens = 0

    @property
    def busy(self) -> bool:
        return self.engine.has_work or not self.core.idle

    def now(self) -> float:
        return self.engine.now()

    def route(self, request: GenerationRequest, sink: ResponseSink) -> None:
        """Take a routed request as the Triton model does: submit it and let the serving
        loop move it into the gate and admit it if the limit allows. That loop runs
        between engine polls, so it does not wait for the iteration in flight to end;
        the engine starts it at its next iteration. An idle replica's clock first
        catches up to the arrival."""
        if not self.busy:
            self.engine.advance_to(request.arrival_time)
        self.core.submit(request, sink)
        self.core.step()
        self.outstanding += 1
        self.remaining_tokens += request_tokens(request)

    def run_pass(self) -> bool:
        """Step the core (dispatch, controller, admission), then one engine iteration.
        Returns whether the engine ran an iteration."""
        self.core.step()
        if self.engine.has_work:
            self.engine.step()
            return True
        return False

    def exported_iteration_stats(self, t: float):
        """The iteration stats the pod's /metrics would show at fleet time `t`: while an
        iteration runs (it started at or before `t` and ends after), TensorRT-LLM reports
        the stats it recorded at that iteration's launch: its scheduled contexts hold
        their KV blocks already and `queued` counts only requests not yet fetched.
        Otherwise what the serving core last saw (`metrics.exported_stats`)."""
        launch = self.engine.launch_stats
        if launch is not None and self.core.running and launch.timestamp <= t < self.engine.now():
            return launch
        return exported_stats(self.core)

    def scrape(self, t: float) -> ReplicaMetrics:
        """The values the pod's gauges take when it refreshes them at fleet time `t`."""
        stats = self.exported_iteration_stats(t)
        requests = TRTLLM_FAMILIES[REQUEST_FAMILY][2]
        kv = TRTLLM_FAMILIES[KV_FAMILY][2]
        if "fraction" in kv:
            fraction = float(kv["fraction"](stats, self.core))
        else:  # TensorRT-LLM's fraction is used / max blocks
            used, total = kv["used"](stats, self.core), kv["max"](stats, self.core)
            fraction = used / total if total else 0.0
        return ReplicaMetrics(
            scraped_at=t,
            waiting=int(requests["waiting"](stats, self.core)),
            scheduled=int(requests["scheduled"](stats, self.core)),
            kv_fraction=fraction,
            batch_limit=int(self.controller.limit),
            running=len(self.core.running),
            queued=len(self.core.gate),
            gauges_at=t,
        )
