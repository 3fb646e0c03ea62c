"""Live measurements against a real tritonserver: trace replay, perf_analyzer sweeps,
the side-by-side demo and the transport-overhead benchmark."""
