"""The demo's text section: a few prompts answered through the `ensemble`
(preprocessing -> tensorrt_llm -> postprocessing) in a real tritonserver, non-streaming
and streaming, with the shipped tokenizer. The engine is simulated, so the answers are
well-formed text from the tokenizer's vocabulary, not meaningful replies."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .models import MODEL_REPOSITORY, simulated_params
from .server import TritonServer, build_repository

TEXT_PROMPTS = (
    "What is the batch limit?",
    "Why not always use the largest batch?",
    "Write a short poem about the sea.",
)
TEXT_MODELS = ("tensorrt_llm", "preprocessing", "postprocessing", "ensemble")


@dataclass
class TextAnswer:
    prompt: str
    text: str  # /generate (one response)
    streamed: str  # /generate_stream, the pieces joined
    pieces: int  # responses the stream carried
    seconds: float


def _post(url: str, body: dict) -> bytes:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def answer(server: TritonServer, prompt: str, max_tokens: int) -> TextAnswer:
    base = f"http://{server.http_url}/v2/models/ensemble"
    t0 = time.monotonic()
    text = json.loads(_post(f"{base}/generate", {"text_input": prompt, "max_tokens": max_tokens}))
    body = {"text_input": prompt, "max_tokens": max_tokens, "stream": True}
    events = [
        json.loads(line[len(b"data: ") :])
        for line in _post(f"{base}/generate_stream", body).splitlines()
        if line.startswith(b"data: ")
    ]
    return TextAnswer(
        prompt=prompt,
        text=text["text_output"],
        streamed="".join(e.get("text_output", "") for e in events),
        pieces=len(events),
        seconds=time.monotonic() - t0,
    )


def run_text_demo(
    out_dir: Path,
    prompts: tuple[str, ...] = TEXT_PROMPTS,
    max_tokens: int = 24,
    time_scale: float = 0.2,
    log=print,
) -> list[TextAnswer]:
    repo = build_repository(
        Path(out_dir) / "text_model_repository",
        {name: MODEL_REPOSITORY / name for name in TEXT_MODELS},
        overrides={"tensorrt_llm": simulated_params("llama-2-13b-a100-40gb", time_scale)},
    )
    log(
        "[demo] text: prompts through the `ensemble` (shipped tokenizer, simulated engine: "
        "tokens from its vocabulary, a different sequence for every request)"
    )
    with TritonServer(repo, log_path=Path(out_dir) / "text_server.log") as server:
        answers = [answer(server, p, max_tokens) for p in prompts]
    for a in answers:
        log(f"  > {a.prompt}")
        log(f"    /generate        {a.text!r}")
        log(f"    /generate_stream {a.streamed!r} ({a.pieces} pieces)")
    Path(out_dir, "text.json").write_text(json.dumps([vars(a) for a in answers], indent=1))
    return answers
