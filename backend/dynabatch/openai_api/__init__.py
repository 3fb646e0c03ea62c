"""OpenAI-compatible HTTP frontend that forwards to tritonserver's text models
(`tensorrt_llm_bls`, `ensemble`) over gRPC and proxies its /metrics (docs/OPENAI.md)."""
