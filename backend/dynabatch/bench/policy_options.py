"""`--policy-param KEY=VALUE` of `dynabatch capacity` and `dynabatch grid`: controller
parameters for the policies of a comparison.

Each value is typed and range-checked by the parameter's own ParamSpec, the one that
checks config.pbtxt, and applied only to the policies whose builder reads it (for
example `prefill_pacing=false` to `adaptive`, `tpot_sla_tolerance_ms=2` to `paper` and
`paper_sla`); every other policy of the line-up runs as before.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..controller import make_controller
from ..controller.config import SPECS
from ..controller.registry import POLICY_MODULES, entry
from ..params import ConfigError
from .runner import PolicySpec

# What the benchmark sets itself, so a --policy-param there would contradict it: the
# policy and the static limit come from the policy labels, the limits every policy
# shares from the engine's batch (a static limit's probes are shared on that
# assumption, probe_memo.py), the targets from the run's SLO.
_SET_BY_THE_BENCHMARK = {
    "batch_policy": "the policy labels (--policies)",
    "static_batch_size": "the policy labels (static-N/maxu|gne)",
    "batch_size_lower": "the benchmark (every policy shares it)",
    "batch_size_upper": "the benchmark (every policy shares it)",
    "tpot_sla_ms": "the run's TPOT SLO (--slo-tpot)",
    "ttft_sla_s": "the run's TTFT SLO (--slo-ttft)",
}

PolicyParams = tuple[tuple[str, Any], ...]


def add_policy_param_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy-param",
        action="append",
        metavar="KEY=VALUE",
        help="controller parameter (its config.pbtxt name, docs/PARAMETERS.md), repeatable; "
        "applied to the policies that read it, e.g. prefill_pacing=false",
    )


def parse_policy_params(items: Sequence[str] | None) -> PolicyParams:
    """['prefill_pacing=false', ...] -> typed (key, value) pairs; ValueError naming the
    bad item otherwise. A key given twice keeps its last value."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key or not raw:
            raise ValueError(f"--policy-param expects KEY=VALUE, got {item!r}")
        if key in _SET_BY_THE_BENCHMARK:
            raise ValueError(f"--policy-param {key}: set by {_SET_BY_THE_BENCHMARK[key]}")
        spec = SPECS.get(key)
        if spec is None:
            known = sorted(set(SPECS) - set(_SET_BY_THE_BENCHMARK))
            raise ValueError(
                f"--policy-param: unknown controller parameter {key!r}; known: {', '.join(known)}"
            )
        try:
            out[key] = spec.parse(raw)
        except ConfigError as exc:
            raise ValueError(f"--policy-param: {exc}") from None
    return tuple(out.items())


def _reads(policy: str) -> tuple[str, ...]:
    """The parameters a controller policy reads ("oracle" is no controller: none)."""
    return entry(policy).param_names if policy in POLICY_MODULES else ()


def apply_policy_params(specs: Sequence[PolicySpec], params: PolicyParams) -> list[PolicySpec]:
    """Each spec with the parameters its policy reads added; ValueError naming a
    parameter that none of them reads, or that its policy refuses in combination."""
    if not params:
        return list(specs)
    out, used = [], set()
    for spec in specs:
        mine = tuple((k, v) for k, v in params if k in _reads(spec.policy))
        if mine:
            used.update(k for k, _ in mine)
            spec = replace(spec, params=spec.params + mine)
            try:  # the policy's own cross-checks, before any run
                make_controller(spec.policy, dict(spec.params), max_batch_size=1024)
            except (ConfigError, ValueError) as exc:
                raise ValueError(f"--policy-param for {spec.name}: {exc}") from None
        out.append(spec)
    unused = [k for k, _ in params if k not in used]
    if unused:
        raise ValueError(
            f"--policy-param {', '.join(unused)}: read by none of the selected policies "
            f"({', '.join(dict.fromkeys(s.policy for s in specs))})"
        )
    return out
