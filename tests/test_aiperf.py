"""A bounded aiperf run (NVIDIA's LLM benchmark client, from PyPI, in .venv-aiperf)
against the OpenAI-compatible frontend: 8 streamed chat requests, export written."""

import json
import subprocess
from pathlib import Path

import pytest
from dynabatch.text.tokenizer_dir import SHIPPED_TOKENIZER_DIR
from openai_frontend import Frontend
from text_client import FAST

pytestmark = [pytest.mark.server, pytest.mark.slow]

AIPERF = Path(__file__).resolve().parents[1] / ".venv-aiperf" / "bin" / "aiperf"
REQUESTS = 8


@pytest.mark.skipif(not AIPERF.exists(), reason="run scripts/setup (it installs .venv-aiperf)")
def test_aiperf_run_writes_export_with_throughput(triton, tmp_path):
    triton.load("tensorrt_llm", **FAST)
    triton.load("tensorrt_llm_bls")
    fe = Frontend(triton)
    try:
        cmd = [str(AIPERF), "profile", "--model", "tensorrt_llm_bls", "--url", fe.url]
        cmd += ["--endpoint-type", "chat", "--streaming", "--use-server-token-count"]
        cmd += ["--tokenizer", str(SHIPPED_TOKENIZER_DIR), "--ui-type", "none"]
        cmd += ["--request-count", str(REQUESTS), "--concurrency", "2", "--isl", "32"]
        cmd += ["--osl", "16", "--random-seed", "0", "--artifact-dir", str(tmp_path)]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    finally:
        fe.stop()
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    export = json.loads((tmp_path / "profile_export_aiperf.json").read_text())
    assert export["error_summary"] == []
    assert export["completed_request_count"]["avg"] == REQUESTS
    assert export["output_token_throughput"]["avg"] > 0
    assert export["request_throughput"]["avg"] > 0
