"""Multi-GPU engines: tensor and pipeline parallelism through both TensorRT-LLM adapters.

One replica = one engine over tensor_parallel_size x pipeline_parallel_size GPUs; the
controller sees one engine (one set of iteration stats from the leader rank).

- Executor API (`engine=trtllm_executor`): TP/PP are baked into the engine by
  `trtllm-build --tp_size/--pp_size`; the parameters here must match it. With more than
  one GPU the executor runs in orchestrator mode: the Triton process is the orchestrator
  and TensorRT-LLM spawns one `executorWorker` per rank through MPI
  (ParallelConfig(MPI, ORCHESTRATOR, device_ids, OrchestratorConfig(True, worker))), so
  tritonserver itself is started normally, not under mpirun.
- LLM API (`engine=trtllm_llmapi`): `tensor_parallel_size` / `pipeline_parallel_size`
  go to LLM(...), which starts its MPI workers itself; start tritonserver through
  `trtllm-llmapi-launch`. The LLM API takes no device list: `gpu_device_ids` becomes
  CUDA_VISIBLE_DEVICES before the LLM (and its workers) start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..params import ConfigError, ParamSpec

PARALLEL_PARAMS: list[ParamSpec] = [
    ParamSpec(
        "tensor_parallel_size",
        int,
        1,
        "GPUs per model (tensor parallelism); Executor API: as the engine was built",
        min=1,
        group="tensorrt_llm",
    ),
    ParamSpec(
        "pipeline_parallel_size",
        int,
        1,
        "pipeline stages (GPUs per model = tensor x pipeline); Executor API: as built",
        min=1,
        group="tensorrt_llm",
    ),
    ParamSpec(
        "gpu_device_ids",
        str,
        "",
        "comma-separated GPU ids, one per rank (empty = TensorRT-LLM's default)",
        group="tensorrt_llm",
    ),
]

EXECUTOR_PARALLEL_PARAMS: list[ParamSpec] = [
    ParamSpec(
        "executor_worker_path",
        str,
        "",
        "orchestrator mode (more than one GPU): the executorWorker binary "
        "(empty = tensorrt_llm/bin/executorWorker)",
        group="tensorrt_llm",
    ),
]


def world_size(p: Mapping[str, Any]) -> int:
    return int(p.get("tensor_parallel_size", 1)) * int(p.get("pipeline_parallel_size", 1))


def device_ids(p: Mapping[str, Any]) -> list[int] | None:
    """The GPU list, one id per rank; None when not given."""
    text = str(p.get("gpu_device_ids", "") or "").strip()
    if not text:
        return None
    try:
        ids = [int(x) for x in text.split(",")]
    except ValueError:
        raise ConfigError("gpu_device_ids", text, "comma-separated integers") from None
    world = world_size(p)
    if len(ids) != world or len(set(ids)) != len(ids):
        raise ConfigError(
            "gpu_device_ids",
            text,
            f"{world} distinct ids, one per rank (tensor_parallel_size x "
            f"pipeline_parallel_size = {p.get('tensor_parallel_size', 1)} x "
            f"{p.get('pipeline_parallel_size', 1)})",
        )
    return ids


def default_worker_path() -> str:
    import tensorrt_llm

    return os.path.join(os.path.dirname(tensorrt_llm.__file__), "bin", "executorWorker")


def executor_parallel_config(tle: Any, p: Mapping[str, Any]) -> Any | None:
    """ParallelConfig for the Executor API (module `tle` = bindings.executor), or None
    for one GPU and no device list (TensorRT-LLM's default)."""
    ids = device_ids(p)
    if world_size(p) == 1:
        return tle.ParallelConfig(device_ids=ids) if ids else None
    worker = p.get("executor_worker_path") or default_worker_path()
    return tle.ParallelConfig(
        communication_type=tle.CommunicationType.MPI,
        communication_mode=tle.CommunicationMode.ORCHESTRATOR,
        device_ids=ids,
        orchestrator_config=tle.OrchestratorConfig(
            is_orchestrator=True, worker_executable_path=worker
        ),
    )


def llmapi_parallel_kwargs(p: Mapping[str, Any]) -> dict[str, Any]:
    """LLM(...) keywords for the parallel layout."""
    return {
        "tensor_parallel_size": int(p.get("tensor_parallel_size", 1)),
        "pipeline_parallel_size": int(p.get("pipeline_parallel_size", 1)),
    }


def llmapi_visible_devices(p: Mapping[str, Any], environ: dict | None = None) -> str | None:
    """Set CUDA_VISIBLE_DEVICES from gpu_device_ids (before the LLM starts its workers);
    returns the value set, or None when no list was given."""
    ids = device_ids(p)
    if ids is None:
        return None
    env = os.environ if environ is None else environ
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in ids)
    return env["CUDA_VISIBLE_DEVICES"]
