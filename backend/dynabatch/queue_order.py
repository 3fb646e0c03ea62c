"""Admission order: which waiting request the gate admits next (docs/ADMISSION.md).

The order is separate from the admission *limit*: the controller decides how many
requests may run, the order decides which waiting request takes a free slot. Every
controller works under every order.

- `fcfs`: arrival order.
- `priority`: higher `priority` first, arrival order within a priority (the default).
- `sjf`: shortest predicted job first. A job is its prompt plus its predicted output:
  E[min(L, max_tokens)] under the output-length distribution learned from finished
  requests (the same survival table the `adaptive` controller forecasts KV with),
  conditioned on the request's max tokens and prompt length, so a request asking for few
  tokens, or whose prompt length typically gets short answers, is predicted short.
- `fair`: the virtual token counter (VTC) of Sheng et al., "Fairness in Serving Large
  Language Models" (OSDI 2024): each tenant's counter grows by the tokens it was served
  (input tokens x 1 at admission, output tokens x 2 as generated, both divided by the
  tenant's weight) and the backlogged tenant with the smallest counter goes next. A
  tenant that was idle is lifted to the smallest backlogged counter so it cannot bank
  credit while idle. Within a tenant: priority, then arrival.

Aging (every order): a request that has waited `queue_aging_ms` or longer is admitted
before any request that arrived after it (the oldest such request goes first), so no
request is overtaken once it has waited the aging bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .controller.kv_forecast import SurvivalTable
from .params import ConfigError, ParamSpec
from .types import GenerationRequest

QUEUE_POLICIES = ("fcfs", "priority", "sjf", "fair")
DEFAULT_TENANT = "default"
# VTC's token weights (the paper's w_p, w_q: an output token costs twice an input token)
VTC_INPUT_WEIGHT = 1.0
VTC_OUTPUT_WEIGHT = 2.0


@dataclass(order=True)
class QueuedRequest:
    """A request waiting in the gate (gate.py), as the orders below see it: heaps sort
    it by priority then arrival (`sort_key`); cancels and expiry mark it dead."""

    sort_key: tuple = field(init=False, repr=False)
    request: GenerationRequest = field(compare=False)
    sink: Any = field(compare=False)  # where its tokens go once admitted (core.py)
    enqueue_time: float = field(compare=False)
    seq: int = field(compare=False, default=0)
    alive: bool = field(compare=False, default=True)

    def __post_init__(self) -> None:
        self.sort_key = (-self.request.priority, self.seq)


QUEUE_ORDER_PARAMS: list[ParamSpec] = [
    ParamSpec(
        "queue_policy",
        str,
        "priority",
        "admission order of waiting requests: fcfs, priority (higher first, then "
        "arrival), sjf (shortest predicted job), fair (virtual token counter across "
        "tenants); see docs/ADMISSION.md",
        choices=QUEUE_POLICIES,
        group="model",
    ),
    ParamSpec(
        "queue_aging_ms",
        float,
        10000.0,
        "a request that has waited this long is admitted before every request that "
        "arrived after it, whatever the order (0 = no aging)",
        min=0,
        group="model",
    ),
    ParamSpec(
        "tenant_weights",
        str,
        "",
        "per-tenant share weights for queue_policy=fair, `name:weight,...` "
        "(`*` = every other tenant; default weight 1)",
        group="model",
    ),
    ParamSpec(
        "tenant_max_queue_size",
        str,
        "",
        "per-tenant limit on waiting requests, `name:limit,...` (`*` = every other "
        "tenant; 0 or absent = only max_queue_size); a tenant over its limit is "
        "refused while the others are still queued",
        group="model",
    ),
]


@dataclass(frozen=True)
class TenantTable:
    """A per-tenant value parsed from `name:value,...`; `*` sets the value of the rest."""

    values: Mapping[str, float] = field(default_factory=dict)
    default: float = 0.0

    def get(self, tenant: str) -> float:
        return self.values.get(tenant, self.default)


def parse_tenant_table(
    param: str, text: str, *, default: float, integer: bool, minimum: float
) -> TenantTable:
    """`gold:4,free:1,*:2` -> TenantTable; a ConfigError names `param` on bad input."""
    values: dict[str, float] = {}
    rest = default
    what = "an integer" if integer else "a number"
    allowed = f"comma-separated name:value pairs, value {what} >= {minimum:g} (`*` = the rest)"
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, raw = part.rpartition(":")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(param, text, allowed)
        try:
            value = float(raw)
            if integer and not value.is_integer():
                raise ValueError
        except ValueError:
            raise ConfigError(param, text, allowed) from None
        if not value >= minimum or not np.isfinite(value):
            raise ConfigError(param, text, allowed)
        if name == "*":
            rest = value
        elif name in values:
            raise ConfigError(param, text, f"tenant {name!r} is listed twice")
        else:
            values[name] = value
    return TenantTable(values, rest)


@dataclass(frozen=True)
class QueueOrderConfig:
    policy: str = "priority"
    aging_s: float = 0.0
    weights: TenantTable = field(default_factory=lambda: TenantTable({}, 1.0))
    tenant_queue_limits: TenantTable = field(default_factory=TenantTable)


def queue_order_config(params: Mapping[str, object]) -> QueueOrderConfig:
    """The parsed QUEUE_ORDER_PARAMS (from parse_params) as a QueueOrderConfig."""
    return QueueOrderConfig(
        policy=str(params["queue_policy"]),
        aging_s=float(params["queue_aging_ms"]) / 1000.0,  # type: ignore[arg-type]
        weights=parse_tenant_table(
            "tenant_weights",
            str(params["tenant_weights"]),
            default=1.0,
            integer=False,
            minimum=1e-6,
        ),
        tenant_queue_limits=parse_tenant_table(
            "tenant_max_queue_size",
            str(params["tenant_max_queue_size"]),
            default=0,
            integer=True,
            minimum=0,
        ),
    )


class _LengthWindow:
    """E[min(L, m)] from the last `window` lengths: sum_{t < m} S(t) of their survival
    table (rebuilt every `rebuild_every` additions)."""

    def __init__(self, window: int, rebuild_every: int) -> None:
        self.window = window
        self.rebuild_every = rebuild_every
        self.lengths: list[int] = []
        self._since_rebuild = 0
        self._table = SurvivalTable()
        self._cum = np.zeros(1)  # cum[t] = sum_{u < t} S(u)

    def add(self, generated: int) -> None:
        self.lengths.append(int(generated))
        if len(self.lengths) > self.window:
            del self.lengths[: len(self.lengths) - self.window]
        self._since_rebuild += 1
        if self._since_rebuild >= self.rebuild_every or len(self.lengths) <= self.rebuild_every:
            self._since_rebuild = 0
            self._table.rebuild(self.lengths)
            self._cum = np.concatenate(([0.0], np.cumsum(self._table.surv)))

    def expected(self, max_tokens: int) -> float:
        top = self._table.top  # S(t) = surv[top] for t >= top
        if max_tokens <= top + 1:
            return float(self._cum[max_tokens])
        return float(self._cum[top + 1] + (max_tokens - top - 1) * self._table.surv[top])


class OutputLengthModel:
    """The expected output of a request capped at m tokens, E[min(L, m)], learned from
    finished requests and conditioned on what the request says: its max tokens (the
    cap) and its prompt length. Output lengths depend on the prompt (in the Azure
    conversation trace prompts of 700-1300 tokens get ~3.5x longer answers than the
    rest), so each quarter-octave of prompt length keeps its own window once it has
    `min_samples` finished requests; until then the window of all requests answers.
    Before anything finished: m (cautious)."""

    def __init__(self, window: int = 512, bucket_window: int = 128, min_samples: int = 24) -> None:
        self._all = _LengthWindow(window, 16)
        self._bucket_window = bucket_window
        self.min_samples = min_samples
        self._buckets: dict[int, _LengthWindow] = {}

    def __len__(self) -> int:
        return len(self._all.lengths)

    @staticmethod
    def bucket(prompt_len: int) -> int:
        return int(4 * np.log2(max(prompt_len, 1)))

    def add(self, generated: int, prompt_len: int | None = None) -> None:
        self._all.add(generated)
        if prompt_len is not None:
            b = self.bucket(prompt_len)
            if b not in self._buckets:
                self._buckets[b] = _LengthWindow(self._bucket_window, 8)
            self._buckets[b].add(generated)

    def expected(self, max_tokens: int, prompt_len: int | None = None) -> float:
        if not self._all.lengths:
            return float(max_tokens)
        if prompt_len is not None:
            window = self._buckets.get(self.bucket(prompt_len))
            if window is not None and len(window.lengths) >= self.min_samples:
                return window.expected(max_tokens)
        return self._all.expected(max_tokens)


class QueueOrder:
    """Base: one lane, key (-priority, arrival). Subclasses change the key or the lanes."""

    name = "priority"
    multi_lane = False
    # may the order's pick go on prefill credit another tenant spent (core._borrows)
    lends_prefill_credit = False

    def key(self, item: QueuedRequest) -> tuple:
        return (-item.request.priority, item.seq)

    def lane(self, item: QueuedRequest) -> str:
        return ""

    def choose(self, heads: Mapping[str, QueuedRequest]) -> str:
        """The lane whose head goes next (single-lane orders have one)."""
        return min(heads, key=lambda lane: heads[lane].sort_key)

    # served-token feedback (VTC and the SJF length model use it)
    def on_queued(self, tenant: str, backlogged: Sequence[str]) -> None:
        pass

    def on_admit(self, item: QueuedRequest) -> None:
        pass

    def on_tokens(self, tenant: str, n: int) -> None:
        pass

    def on_finish(self, generated: int, prompt_len: int) -> None:
        pass


class FcfsOrder(QueueOrder):
    name = "fcfs"

    def key(self, item: QueuedRequest) -> tuple:
        return (item.seq,)


class ShortestJobOrder(QueueOrder):
    name = "sjf"

    def __init__(self, lengths: OutputLengthModel | None = None) -> None:
        self.lengths = lengths or OutputLengthModel()

    def predicted_tokens(self, prompt_len: int, max_new_tokens: int) -> float:
        return prompt_len + self.lengths.expected(max_new_tokens, prompt_len)

    def key(self, item: QueuedRequest) -> tuple:
        r = item.request
        return (self.predicted_tokens(r.prompt_len, r.max_new_tokens), item.seq)

    def on_finish(self, generated: int, prompt_len: int) -> None:
        self.lengths.add(generated, prompt_len)


class FairShareOrder(QueueOrder):
    """VTC: the backlogged tenant with the smallest virtual token counter goes next."""

    name = "fair"
    multi_lane = True
    # fair share of service includes the prefill pacing: a tenant that spent none of
    # the credit does not wait for another tenant's long prompt to be paid back
    lends_prefill_credit = True

    def __init__(self, weights: TenantTable | None = None) -> None:
        self.weights = weights or TenantTable({}, 1.0)
        self.counters: dict[str, float] = {}
        self._last_admitted = 0.0  # counter of the tenant served last (idle-queue lift)

    def lane(self, item: QueuedRequest) -> str:
        return item.request.tenant or DEFAULT_TENANT

    def choose(self, heads: Mapping[str, QueuedRequest]) -> str:
        c = self.counters
        return min(heads, key=lambda t: (c.get(t, 0.0), heads[t].seq))

    def on_queued(self, tenant: str, backlogged: Sequence[str]) -> None:
        """A tenant with nothing waiting joins: lift its counter so that time spent idle
        is not banked as credit (VTC's counter lift)."""
        others = [self.counters.get(t, 0.0) for t in backlogged if t != tenant]
        floor = min(others) if others else self._last_admitted
        self.counters[tenant] = max(self.counters.get(tenant, 0.0), floor)

    def on_admit(self, item: QueuedRequest) -> None:
        t = self.lane(item)
        self._charge(t, VTC_INPUT_WEIGHT * item.request.prompt_len)
        self._last_admitted = self.counters[t]

    def on_tokens(self, tenant: str, n: int) -> None:
        self._charge(tenant, VTC_OUTPUT_WEIGHT * n)

    def _charge(self, tenant: str, cost: float) -> None:
        self.counters[tenant] = self.counters.get(tenant, 0.0) + cost / self.weights.get(tenant)


def make_queue_order(cfg: QueueOrderConfig) -> QueueOrder:
    if cfg.policy == "fcfs":
        return FcfsOrder()
    if cfg.policy == "priority":
        return QueueOrder()
    if cfg.policy == "sjf":
        return ShortestJobOrder()
    if cfg.policy == "fair":
        return FairShareOrder(cfg.weights)
    raise ConfigError("queue_policy", cfg.policy, "one of " + ", ".join(QUEUE_POLICIES))
