"""dynabatch: memory-aware, SLA-constrained dynamic batching for Triton + TensorRT-LLM."""

__version__ = "0.1.0"
