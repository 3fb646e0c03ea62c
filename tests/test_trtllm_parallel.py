"""Multi-GPU parameters through both TensorRT-LLM adapters (against the stand-in):
tensor_parallel_size x pipeline_parallel_size GPUs per engine, gpu_device_ids one per
rank, orchestrator mode for the Executor API, LLM(...) keywords and
CUDA_VISIBLE_DEVICES for the LLM API. The controller still sees one engine."""

from __future__ import annotations

import pytest
from dynabatch.config import load_config
from dynabatch.engines import trtllm_executor as tx
from dynabatch.engines import trtllm_llmapi as tl
from dynabatch.engines.trtllm_parallel import (
    device_ids,
    executor_parallel_config,
    llmapi_visible_devices,
)
from dynabatch.params import ConfigError
from stand_in.activate import stand_in_trtllm  # noqa: F401  (fixture)
from stand_in.harness import checkpoint_dir, engine_dir


def test_device_list_must_have_one_id_per_rank():
    assert device_ids(
        {"tensor_parallel_size": 2, "pipeline_parallel_size": 2, "gpu_device_ids": "4,5,6,7"}
    ) == [4, 5, 6, 7]
    with pytest.raises(ConfigError, match="gpu_device_ids.*4 distinct ids"):
        device_ids(
            {"tensor_parallel_size": 2, "pipeline_parallel_size": 2, "gpu_device_ids": "0,1"}
        )
    with pytest.raises(ConfigError, match="distinct"):
        device_ids({"tensor_parallel_size": 2, "gpu_device_ids": "1,1"})
    assert device_ids({"gpu_device_ids": ""}) is None


def test_one_gpu_keeps_tensorrt_llms_default(stand_in_trtllm):
    tle = stand_in_trtllm.bindings.executor
    assert executor_parallel_config(tle, {"tensor_parallel_size": 1}) is None
    one = executor_parallel_config(tle, {"gpu_device_ids": "3"})
    assert one.device_ids == [3] and one.communication_mode is None


def test_executor_with_tp_and_pp_runs_in_orchestrator_mode(stand_in_trtllm, tmp_path):
    tle = stand_in_trtllm.bindings.executor
    eng = tx.from_parameters(
        {
            "gpt_model_path": engine_dir(tmp_path),
            "tensor_parallel_size": "2",
            "pipeline_parallel_size": "2",
            "gpu_device_ids": "0,1,2,3",
        },
        max_batch_size=8,
    )
    try:
        pc = eng._ex.config.parallel_config
        assert pc.communication_type is tle.CommunicationType.MPI
        assert pc.communication_mode is tle.CommunicationMode.ORCHESTRATOR
        assert pc.device_ids == [0, 1, 2, 3]
        assert pc.orchestrator_config.is_orchestrator is True
        # default worker: the executorWorker shipped inside the tensorrt_llm package
        assert pc.orchestrator_config.worker_executable_path.endswith("bin/executorWorker")
        assert eng.max_batch_size == 8  # one engine for the controller
    finally:
        eng.shutdown()


def test_llmapi_gets_both_parallel_sizes_and_the_visible_devices(
    stand_in_trtllm, tmp_path, monkeypatch
):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    import os

    eng = tl.from_parameters(
        {
            "gpt_model_path": checkpoint_dir(tmp_path),
            "stats_check_period_ms": "5",
            "tensor_parallel_size": "2",
            "pipeline_parallel_size": "2",
            "gpu_device_ids": "4,5,6,7",
        },
        max_batch_size=8,
    )
    try:
        assert eng._llm.args["tensor_parallel_size"] == 2
        assert eng._llm.args["pipeline_parallel_size"] == 2
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "4,5,6,7"
    finally:
        eng.shutdown()


def test_visible_devices_untouched_without_a_list():
    env = {"CUDA_VISIBLE_DEVICES": "2"}
    assert llmapi_visible_devices({"tensor_parallel_size": 2}, env) is None
    assert env == {"CUDA_VISIBLE_DEVICES": "2"}


@pytest.mark.parametrize("engine", ["trtllm_executor", "trtllm_llmapi"])
def test_model_config_accepts_the_parallel_parameters(engine):
    cfg = load_config(
        {"engine": engine, "tensor_parallel_size": "4", "pipeline_parallel_size": "2"}
    )
    assert cfg.engine_params["tensor_parallel_size"] == 4
    assert cfg.engine_params["pipeline_parallel_size"] == 2
    with pytest.raises(ConfigError, match="pipeline_parallel_size"):
        load_config({"engine": engine, "pipeline_parallel_size": "0"})
