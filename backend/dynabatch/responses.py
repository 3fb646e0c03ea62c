"""The responses of one Triton request, which carries one or more rows (TensorRT-LLM
batches: each row is its own generation request).

Each row's TritonSink sends plain data (RowOutput / RowError) through its RowSender;
the ResponseGroup turns it into Triton responses the way TensorRT-LLM's model does:
- decoupled: every row's responses go out as they come, each with `batch_index` when
  the request has several rows; the final flag goes with the last row's last response.
- non-decoupled (unary gRPC/HTTP infer): exactly one response, sent when every row is
  done: output_ids [rows, 1, longest], sequence_length [rows, 1], batch_index [rows, 1].
This module does not import pb_utils: `build(tensors)` / `build_error(message, reason)`
make the Triton objects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .request_mapping import ResponseOptions
from .types import FinishReason

# numpy dtypes of the optional outputs (TensorRT-LLM's types)
PERF_DTYPES = {
    "kv_cache_alloc_new_blocks": np.int32,
    "kv_cache_reused_blocks": np.int32,
    "kv_cache_alloc_total_blocks": np.int32,
    "arrival_time_ns": np.int64,
    "first_scheduled_time_ns": np.int64,
    "first_token_time_ns": np.int64,
    "last_token_time_ns": np.int64,
    "acceptance_rate": np.float32,
    "total_accepted_draft_tokens": np.int32,
    "total_draft_tokens": np.int32,
}


@dataclass
class RowOutput:
    """One response's worth of a row: its tokens and the extras it asked for."""

    tokens: list[int]
    options: ResponseOptions
    num_input_tokens: int
    num_output_tokens: int  # generated tokens in this response (prompt not counted)
    pad_id: int = 0  # fills a shorter row in a merged (non-decoupled) batch response
    perf: dict[str, float] = field(default_factory=dict)  # return_perf_metrics, final only


@dataclass
class RowError:
    message: str
    reason: FinishReason | None


def row_tensors(row: RowOutput, batch_index: int | None) -> dict[str, np.ndarray]:
    """One row's output tensors, Triton's batch dimension (1) first."""
    ids = np.asarray(row.tokens, dtype=np.int32).reshape(1, 1, -1)
    out = {
        "output_ids": ids,
        "sequence_length": np.array([[ids.shape[-1]]], dtype=np.int32),
    }
    if batch_index is not None:
        out["batch_index"] = np.array([[batch_index]], dtype=np.int32)
    if row.options.return_num_input_tokens:
        out["num_input_tokens"] = np.array([[row.num_input_tokens]], dtype=np.int32)
    if row.options.return_num_output_tokens:
        out["num_output_tokens"] = np.array([[row.num_output_tokens]], dtype=np.int32)
    for name, value in row.perf.items():
        out[name] = np.array([[value]], dtype=PERF_DTYPES[name])
    return out


def merge_rows(rows: list[RowOutput]) -> dict[str, np.ndarray]:
    """A non-decoupled batch's one response: rows stacked, shorter rows padded with their
    pad id (sequence_length says how many tokens are real)."""
    longest = max(len(r.tokens) for r in rows)
    ids = np.empty((len(rows), 1, longest), dtype=np.int32)
    for i, r in enumerate(rows):
        ids[i, 0, : len(r.tokens)] = r.tokens
        ids[i, 0, len(r.tokens) :] = r.pad_id
    out: dict[str, np.ndarray] = {
        "output_ids": ids,
        "sequence_length": np.array([[len(r.tokens)] for r in rows], dtype=np.int32),
        "batch_index": np.arange(len(rows), dtype=np.int32).reshape(-1, 1),
    }
    per_row = [row_tensors(r, None) for r in rows]
    extras = sorted({k for t in per_row for k in t} - set(out))
    for name in extras:  # a row that did not ask for an output gets 0 there
        dtype = next(t[name].dtype for t in per_row if name in t)
        out[name] = np.concatenate(
            [t.get(name, np.zeros((1, 1), dtype=dtype)) for t in per_row], axis=0
        )
    return out


class ResponseGroup:
    """The response sender of one Triton request, shared by the sinks of its rows."""

    def __init__(
        self,
        sender: Any,
        rows: int,
        *,
        decoupled: bool,
        final_flag: int,
        build: Callable[[dict[str, np.ndarray]], Any],
        build_error: Callable[[str, FinishReason | None], Any],
    ) -> None:
        self.sender = sender
        self.rows = rows
        self.decoupled = decoupled
        self.final_flag = final_flag
        self.build = build
        self.build_error = build_error
        self._open = rows
        self._finals: list[RowOutput | RowError | None] = [None] * rows
        self._lock = threading.Lock()  # sends of different rows never interleave

    def row(self, index: int) -> RowSender:
        return RowSender(self, index)

    def is_cancelled(self) -> bool:
        return bool(self.sender.is_cancelled())

    def _send(self, index: int, payload: RowOutput | RowError | None, flags: int) -> None:
        final = bool(flags & self.final_flag)
        with self._lock:
            if final:
                self._open -= 1
                self._finals[index] = payload
            last = final and self._open == 0
            if self.decoupled:
                self._send_decoupled(index, payload, last)
            elif last:
                self._send_unary()

    def _send_decoupled(self, index: int, payload, last: bool) -> None:
        flags = self.final_flag if last else 0
        batch_index = index if self.rows > 1 else None
        if isinstance(payload, RowError):
            message = payload.message if self.rows == 1 else f"row {index}: {payload.message}"
            response = self.build_error(message, payload.reason)
        elif payload is not None:
            response = self.build(row_tensors(payload, batch_index))
        else:
            response = None
        if response is not None:
            self.sender.send(response, flags=flags)
        elif flags:
            self.sender.send(flags=flags)

    def _send_unary(self) -> None:
        """Non-decoupled: exactly one response for the whole request, with the final flag."""
        errors = [(i, p) for i, p in enumerate(self._finals) if isinstance(p, RowError)]
        if errors:
            i, err = errors[0]
            message = err.message if self.rows == 1 else f"row {i}: {err.message}"
            response = self.build_error(message, err.reason)
        elif any(p is None for p in self._finals):  # a row ended with nothing to deliver
            response = self.build_error("request cancelled", FinishReason.CANCELLED)
        else:
            rows = [p for p in self._finals if isinstance(p, RowOutput)]
            tensors = merge_rows(rows) if self.rows > 1 else row_tensors(rows[0], None)
            response = self.build(tensors)
        self.sender.send(response, flags=self.final_flag)


class RowSender:
    """What a row's TritonSink sees as its response sender."""

    def __init__(self, group: ResponseGroup, index: int) -> None:
        self.group = group
        self.index = index

    def send(self, response: RowOutput | RowError | None = None, flags: int = 0) -> None:
        self.group._send(self.index, response, flags)

    def is_cancelled(self) -> bool:
        return self.group.is_cancelled()
