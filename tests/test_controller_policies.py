"""static, trtllm_tuner, sglang_ratio and the factory/parameter contract."""

import pytest
from dynabatch.controller import CONTROLLER_PARAMS, POLICIES, make_controller
from dynabatch.controller.trtllm_tuner import runtime_batch_size
from dynabatch.engines.base import KvCapacity
from dynabatch.params import ConfigError
from dynabatch.types import ControlInput, RequestState
from stats_builder import iteration_stats

KV = KvCapacity(1000, 16)


def stats(*, used=0, total=1000, latency=30.0, gen=1, pauses=0, t=0.0):
    return iteration_stats(used=used, total=total, latency=latency, gen=gen, pauses=pauses, t=t)


def state(i, prompt, max_new, generated=0, started=True):
    return RequestState(
        i, prompt, max_new, 0.0, 0.0, generated=generated, first_token_time=0.0 if started else None
    )


# ---- factory ----------------------------------------------------------------------


def test_every_policy_builds_and_reports_stable_bound_names():
    names = {
        "static": {"static"},
        "paper_memory": {"memory"},
        "paper_sla": {"sla"},
        "paper": {"memory", "sla"},
        "adaptive": {"memory", "sla"},
        "trtllm_tuner": {"tuner"},
        "sglang_ratio": {"memory"},
    }
    assert set(POLICIES) == set(names)
    for policy in POLICIES:
        ctl = make_controller(policy, max_batch_size=64, kv_capacity=KV)
        ctl.update(ControlInput(stats(used=100), 3, 0.5, {0: state(0, 100, 100)}))
        assert set(ctl.decision.bounds) == names[policy], policy
        assert ctl.decision.limit == ctl.limit
        assert ctl.decision.reason in names[policy]


def test_unknown_policy_names_parameter_and_allowed_values():
    with pytest.raises(ConfigError) as err:
        make_controller("fastest", max_batch_size=8, kv_capacity=KV)
    assert "batch_policy" in str(err.value) and "adaptive" in str(err.value)
    assert err.value.name == "batch_policy"


def test_params_parse_strings_and_typed_values_alike():
    a = make_controller("static", {"static_batch_size": "12"}, max_batch_size=64, kv_capacity=KV)
    b = make_controller("static", {"static_batch_size": 12}, max_batch_size=64, kv_capacity=KV)
    assert a.limit == b.limit == 12
    with pytest.raises(ConfigError, match="memory_factor"):
        make_controller("paper_memory", {"memory_factor": "1.5"}, max_batch_size=8, kv_capacity=KV)
    with pytest.raises(ConfigError, match="tpot_sla_ms"):
        make_controller("paper_sla", {"tpot_sla_ms": "fast"}, max_batch_size=8, kv_capacity=KV)
    with pytest.raises(ConfigError, match="batch_size_lower"):
        make_controller(
            "paper",
            {"batch_size_lower": 9, "batch_size_upper": 8},
            max_batch_size=8,
            kv_capacity=KV,
        )
    with pytest.raises(ConfigError, match="batch_size_upper"):
        make_controller("paper", {"batch_size_upper": 9}, max_batch_size=8, kv_capacity=KV)


def test_upper_defaults_to_engine_max_batch_size():
    assert make_controller("static", max_batch_size=48, kv_capacity=KV).limit == 48
    ctl = make_controller("paper_memory", max_batch_size=48, kv_capacity=KV)
    assert ctl.update(ControlInput(stats(used=1), 1, 0.1, {0: state(0, 10, 10)})) == 48


def test_param_specs_are_unique_and_defaults_valid():
    names = [s.name for s in CONTROLLER_PARAMS]
    assert len(names) == len(set(names))
    for spec in CONTROLLER_PARAMS:
        assert spec.parse(None) == spec.default
        spec.parse(str(spec.default).lower() if spec.kind is bool else str(spec.default))


# ---- trtllm_tuner -----------------------------------------------------------------


@pytest.mark.parametrize(
    "capacity,expected",
    [
        (1, 128),
        (143, 128),
        (144, 256),
        (335, 256),
        (671, 512),
        (831, 768),
        (1279, 1024),
        (1663, 1536),
        (1665, 1665),
        (2049, 2048),
        (2200, 2200),
    ],
)
def test_tuner_batch_size_table(capacity, expected):
    # the same cases as TensorRT-LLM's DynamicBatchConfig.RuntimeBatchSize unit test
    assert runtime_batch_size(capacity) == expected


def test_tuner_uses_requested_lengths_and_128_sample_window():
    ctl = make_controller("trtllm_tuner", max_batch_size=2048)
    # prompt 100 + requested 1000 -> ceil(1100/16) = 69 blocks -> 1449 seqs -> table -> 1536
    run = {i: state(i, 100, 1000, generated=5) for i in range(10)}
    assert ctl.update(ControlInput(stats(total=100_000), 0, 0.0, run)) == 1536
    # 200 samples of 2000 + 2000 fill the window: 250 blocks -> 400 -> table -> 512
    run = {i: state(i, 2000, 2000) for i in range(200)}
    assert ctl.update(ControlInput(stats(total=100_000), 0, 0.0, run)) == 512
    assert ctl._in_sum == 128 * 2000  # only the newest 128 samples count


def test_tuner_moving_average_mixes_iterations_and_caps_at_max_batch():
    ctl = make_controller("trtllm_tuner", {"tuner_window": 4}, max_batch_size=100)
    ctl.update(
        ControlInput(stats(total=10_000), 0, 0.0, {0: state(0, 100, 100), 1: state(1, 100, 100)})
    )
    ctl.update(
        ControlInput(stats(total=10_000), 0, 0.0, {2: state(2, 300, 300), 3: state(3, 300, 300)})
    )
    # mean 200 + 200 -> 25 blocks -> 400 seqs -> 512, capped at max_batch_size 100
    assert ctl.limit == 100
    assert ctl.capacity == 400


# ---- sglang_ratio -----------------------------------------------------------------


def sg(**kw):
    return make_controller("sglang_ratio", kw, max_batch_size=256, kv_capacity=KvCapacity(1000, 16))


def test_sglang_ratio_decays_linearly_to_floor():
    ctl = sg()
    run = {0: state(0, 10, 100)}
    ctl.update(ControlInput(stats(), 0, 0.0, run))
    assert ctl.ratio == pytest.approx(0.7 - (0.7 - 0.098) / 600)
    for _ in range(299):
        ctl.update(ControlInput(stats(), 0, 0.0, run))
    assert ctl.ratio == pytest.approx(0.7 - (0.7 - 0.098) / 2)
    for _ in range(400):
        ctl.update(ControlInput(stats(), 0, 0.0, run))
    assert ctl.ratio == pytest.approx(0.098)
    ctl.update(ControlInput(stats(gen=0), 0, 0.0, run))  # no decode step: no decay
    assert ctl.ratio == pytest.approx(0.098)


def test_sglang_ratio_reset_on_pause():
    ctl = sg()
    run = {0: state(0, 10, 100, generated=30), 1: state(1, 10, 300, generated=50)}
    ctl.update(ControlInput(stats(pauses=1), 0, 0.0, run))
    assert ctl.ratio == pytest.approx((30 + 50 + 2 * 20) / 400)


def test_sglang_ratio_admits_queue_head_that_fits_in_order():
    ctl = sg()  # 16000 tokens
    run = {0: state(0, 1000, 1000, generated=0)}  # in cache: 63 blocks used
    # free = (1000-63)*16 = 14992; reserved = 1000*r; head needs 2000 + 1000*r each
    head = [(2000, 1000)] * 10
    ctl.update(ControlInput(stats(used=63), 10, 0.0, run, waiting_head=head))
    r = ctl.ratio
    avail = 14992 - 1000 * r
    expected = int(avail // (2000 + 1000 * r))
    assert ctl.fits == expected and ctl.limit == 1 + expected
    # FCFS: a big head request blocks the smaller ones behind it
    ctl.update(ControlInput(stats(used=63), 2, 0.0, run, waiting_head=[(15000, 10), (10, 10)]))
    assert ctl.limit == 1


def test_sglang_ratio_counts_unprefilled_prompts_as_reserved():
    ctl = sg()
    started = {0: state(0, 4000, 100)}
    pending = {0: state(0, 4000, 100, started=False)}
    head = [(1000, 100)] * 20
    a = ctl.update(ControlInput(stats(used=0), 20, 0.0, started, waiting_head=head))
    b = ctl.update(ControlInput(stats(used=0), 20, 0.0, pending, waiting_head=head))
    assert b < a
