"""The policy registry: every policy builds itself from the parameters it names, and
every declared controller parameter belongs to a policy."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest
from dynabatch.controller import CONTROLLER_PARAMS, POLICIES, make_controller
from dynabatch.controller.registry import POLICY_MODULES, SHARED_PARAMS, Bounds, entry
from dynabatch.params import parse_params


class Reads(Mapping):
    """A parameter mapping that records which keys were read."""

    def __init__(self, values: dict) -> None:
        self.values, self.read = values, set()

    def __getitem__(self, key):
        self.read.add(key)
        return self.values[key]

    def __iter__(self):
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def test_every_policy_is_registered_and_every_parameter_has_an_owner():
    assert set(POLICY_MODULES) == set(POLICIES)
    owners: dict[str, set[str]] = {}
    for policy in POLICIES:
        for name in entry(policy).param_names:
            owners.setdefault(name, set()).add(policy)
    declared = {s.name for s in CONTROLLER_PARAMS} - set(SHARED_PARAMS)
    assert set(owners) == declared
    for spec in CONTROLLER_PARAMS:  # a help text that names a policy names an owner
        m = re.match(r"`(\w+)`:", spec.help)
        if m:
            assert m.group(1) in owners[spec.name], spec.name


@pytest.mark.parametrize("policy", POLICIES)
def test_a_policy_reads_exactly_the_parameters_it_names(policy):
    p = Reads(parse_params(CONTROLLER_PARAMS, {}))
    e = entry(policy)
    ctl = e.build(p, Bounds(1, 64, 64))
    assert ctl.name == policy
    assert p.read == set(e.param_names)
    assert type(make_controller(policy, {}, max_batch_size=64)) is type(ctl)
