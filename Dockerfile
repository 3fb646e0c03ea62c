# dynabatch on a GPU: Triton Inference Server + TensorRT-LLM, serving model_repository/.
#
# Base: NVIDIA's Triton image with TensorRT-LLM, pinned. 26.07-trtllm-python-py3 ships
# Triton 2.71.0 and TensorRT-LLM 1.2.1, which has both APIs dynabatch drives:
# tensorrt_llm.bindings.executor (engine=trtllm_executor) and tensorrt_llm.LLM
# (engine=trtllm_llmapi). See docs/GPU.md. Not built or run in dynabatch's CI (no GPU).
FROM nvcr.io/nvidia/tritonserver:26.07-trtllm-python-py3

WORKDIR /opt/dynabatch

# The package (pyproject.toml at the root packages backend/dynabatch). numpy and
# TensorRT-LLM come with the image; nvidia-ml-py gives GPU telemetry (pinned as in
# requirements.txt).
COPY pyproject.toml README.md ./
COPY backend/ backend/
RUN python3 -m pip install --no-cache-dir . "nvidia-ml-py==13.615.71" \
 && python3 -c "import dynabatch.engines.trtllm_executor, dynabatch.engines.trtllm_llmapi"

# Triton model repository: model_repository/<model>/config.pbtxt + 1/model.py.
COPY model_repository/ /opt/dynabatch/model_repository/

EXPOSE 8000 8001 8002

# engine=trtllm_llmapi spawns MPI workers: start it as
#   trtllm-llmapi-launch tritonserver --model-repository=/opt/dynabatch/model_repository
CMD ["tritonserver", "--model-repository=/opt/dynabatch/model_repository"]
