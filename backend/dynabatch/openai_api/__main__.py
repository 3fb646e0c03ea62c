"""python -m dynabatch.openai_api --port 9000 --triton-grpc 127.0.0.1:8001 ..."""

from __future__ import annotations

import argparse

from dynabatch.openai_api.app import FrontendConfig, create_app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description="OpenAI-compatible frontend for tritonserver")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--triton-grpc", default="127.0.0.1:8001", help="tritonserver gRPC address")
    ap.add_argument(
        "--triton-metrics",
        default="http://127.0.0.1:8002/metrics",
        help="tritonserver metrics URL, served again at /metrics",
    )
    ap.add_argument(
        "--models",
        default="tensorrt_llm_bls,ensemble",
        help="text models offered (comma-separated Triton model names)",
    )
    ap.add_argument("--tokenizer-dir", default="", help="HF tokenizer dir (default: shipped)")
    ap.add_argument("--default-max-tokens", type=int, default=16)
    args = ap.parse_args(argv)
    config = FrontendConfig(
        triton_grpc_url=args.triton_grpc,
        triton_metrics_url=args.triton_metrics,
        models=tuple(m for m in args.models.split(",") if m),
        tokenizer_dir=args.tokenizer_dir,
        default_max_tokens=args.default_max_tokens,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
