"""Test helpers for the TensorRT-LLM adapters: model directories for the stand-in,
a bounded event collector, a fixed-limit controller and a recording sink."""

from __future__ import annotations

import json
import time
from typing import Any, Optional

from dynabatch.controller.base import LimitDecision
from dynabatch.types import ControlInput, RequestState, TokenEvent


def token_at(prompt: list[int], i: int) -> int:
    """The stand-in's deterministic i-th output token (mirrors tensorrt_llm/_sim.py)."""
    return (sum(prompt) + 7 * i) % 997 + 3


def engine_dir(tmp_path, **build: Any) -> str:
    """A TensorRT-LLM engine directory for the stand-in Executor."""
    cfg = {
        "build_config": {
            "max_batch_size": 64,
            "max_input_len": 1024,
            "max_seq_len": 2048,
            "max_num_tokens": 4096,
            "max_beam_width": 4,
            "plugin_config": {"tokens_per_block": 64},
            **build,
        }
    }
    d = tmp_path / "engine"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    return str(d)


def checkpoint_dir(tmp_path, tokenizer: bool = True, max_pos: int = 2048) -> str:
    """An HF-style checkpoint directory for the stand-in LLM."""
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "config.json").write_text(
        json.dumps({"eos_token_id": 2, "max_position_embeddings": max_pos})
    )
    if tokenizer:
        (d / "tokenizer_config.json").write_text("{}")
    return str(d)


def collect(engine, want_final: set[int], timeout_s: float = 10.0) -> dict[int, list[TokenEvent]]:
    """Poll until every id in `want_final` got its final event (bounded in time)."""
    events: dict[int, list[TokenEvent]] = {}
    deadline = time.monotonic() + timeout_s
    pending = set(want_final)
    while pending and time.monotonic() < deadline:
        for ev in engine.poll_events(0.05):
            events.setdefault(ev.request_id, []).append(ev)
            if ev.finished:
                pending.discard(ev.request_id)
    assert not pending, f"no final event for {sorted(pending)} within {timeout_s}s"
    return events


def wait_for_tokens(engine, rid: int, n: int, timeout_s: float = 10.0) -> list[TokenEvent]:
    got: list[TokenEvent] = []
    deadline = time.monotonic() + timeout_s
    while sum(len(e.token_ids) for e in got) < n and time.monotonic() < deadline:
        got += [e for e in engine.poll_events(0.05) if e.request_id == rid]
    assert sum(len(e.token_ids) for e in got) >= n, "tokens did not arrive in time"
    return got


def stats_until(engine, done, timeout_s: float = 10.0) -> list:
    """Drain iteration stats until `done(all so far)` holds (bounded in time): the
    stand-in records an iteration on its own thread, a moment after its responses."""
    stats: list = []
    deadline = time.monotonic() + timeout_s
    while not done(stats):
        assert time.monotonic() < deadline, f"stats condition not met within {timeout_s}s"
        stats += engine.drain_stats()
        engine.poll_events(0.005)  # waits on the engine, not on the clock
    return stats


class FixedController:
    """A controller with a fixed limit that records what it was fed."""

    name = "fixed"

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.samples: list[ControlInput] = []
        self.finished: list[RequestState] = []

    def update(self, sample: ControlInput) -> int:
        self.samples.append(sample)
        assert len(sample.running) <= self._limit
        return self._limit

    def on_request_finish(self, state: RequestState) -> None:
        self.finished.append(state)

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def decision(self) -> LimitDecision:
        return LimitDecision(self._limit, {"fixed": self._limit}, "fixed")


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[TokenEvent] = []
        self.final: Optional[TokenEvent] = None

    def on_event(self, event: TokenEvent, state: Optional[RequestState]) -> None:
        self.events.append(event)
        if event.finished:
            self.final = event

    @property
    def tokens(self) -> list[int]:
        return [t for e in self.events for t in e.token_ids]
