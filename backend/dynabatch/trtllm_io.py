"""The inputs and outputs of TensorRT-LLM's `tensorrt_llm` Triton model, and what ours does
with each: one table that the request checks, config.pbtxt and docs/COMPATIBILITY.md
all come from (`python -m dynabatch.trtllm_io io` prints the config's input/output
blocks; a test compares them with model_repository/tensorrt_llm/config.pbtxt).

Names, data types and dims follow TensorRT-LLM's
`triton_backend/all_models/inflight_batcher_llm/tensorrt_llm/config.pbtxt` (its
templated dtypes resolved as the stock ensemble does: logits FP32, embedding tables
FP16), so its ensembles and clients can send anything they send today.

Status of an input:
- SUPPORTED: read and honoured.
- NO_EFFECT: read and type-checked; it has no effect at beam width 1, exactly as in
  TensorRT-LLM (beam-search knobs).
- DEFAULT_ONLY: we cannot honour it. Absent, empty, or at TensorRT-LLM's default it is
  accepted; any other value is refused with an error naming the input and why.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

SUPPORTED = "supported"
NO_EFFECT = "no effect at beam width 1"
DEFAULT_ONLY = "default only"

_NO_SPEC = "speculative decoding is not implemented"
_NO_MM = "encoder-decoder and multimodal models are not served"
_NO_LORA = "LoRA adapters are not served"
_NO_RETENTION = "KV-cache retention priorities are not implemented"
_NO_GUIDE = "guided decoding is not implemented"
_SAMPLING = "passed to TensorRT-LLM; the simulated engine's pseudo-tokens ignore it"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # Triton TYPE_* name
    dims: tuple[int, ...]
    status: str = SUPPORTED
    # DEFAULT_ONLY scalars: TensorRT-LLM's default, the one value accepted; None =
    # accepted only when absent or empty (a tensor with no elements)
    default: float | bool | int | None = None
    why: str = ""
    scalar: bool = True  # one value per batch row (reshape: { shape: [ ] })
    ragged: bool = False  # allow_ragged_batch
    ours_only: bool = False  # not in TensorRT-LLM's model (older names kept working)


def _i32(name: str, **kw) -> TensorSpec:
    return TensorSpec(name, "TYPE_INT32", (1,), **kw)


def _f32(name: str, **kw) -> TensorSpec:
    return TensorSpec(name, "TYPE_FP32", (1,), **kw)


def _bool(name: str, **kw) -> TensorSpec:
    return TensorSpec(name, "TYPE_BOOL", (1,), **kw)


def _tensor(name: str, dtype: str, dims: tuple[int, ...], why: str) -> TensorSpec:
    return TensorSpec(name, dtype, dims, status=DEFAULT_ONLY, why=why, scalar=False, ragged=True)


INPUTS: tuple[TensorSpec, ...] = (
    TensorSpec("input_ids", "TYPE_INT32", (-1,), scalar=False, ragged=True, why="prompt"),
    _tensor("encoder_input_features", "TYPE_FP16", (-1, -1), _NO_MM),
    _i32("encoder_output_lengths", status=DEFAULT_ONLY, why=_NO_MM),
    _i32("input_lengths", why="trims padded input_ids rows; optional here (all of a row)"),
    _i32("request_output_len", why="maximum new tokens"),
    _i32("num_return_sequences", default=1, why="one sequence per request (must be 1)"),
    _tensor("draft_input_ids", "TYPE_INT32", (-1,), _NO_SPEC),
    _tensor("decoder_input_ids", "TYPE_INT32", (-1,), _NO_MM),
    _i32("decoder_input_lengths", status=DEFAULT_ONLY, why=_NO_MM),
    _tensor("draft_logits", "TYPE_FP32", (-1, -1), _NO_SPEC),
    _f32("draft_acceptance_threshold", status=DEFAULT_ONLY, why=_NO_SPEC),
    _i32("end_id", why="ends generation; -1 or absent: no end token"),
    _i32("pad_id", why="pads the rows of a merged batch response"),
    TensorSpec(
        "stop_words_list",
        "TYPE_INT32",
        (2, -1),
        why="ends the row after a stop sequence (kept in the output); [[0], [-1]] = none",
        scalar=False,
        ragged=True,
    ),
    _tensor(
        "bad_words_list",
        "TYPE_INT32",
        (2, -1),
        "bad words are not implemented; [[0], [-1]] = empty",
    ),
    _tensor(
        "embedding_bias", "TYPE_FP32", (-1,), "logit bias is not implemented; all zeros = empty"
    ),
    _i32("beam_width", default=1, why="greedy/sampling only (must be 1)"),
    _f32("temperature", why=_SAMPLING),
    _i32("runtime_top_k", why=_SAMPLING),
    _f32("runtime_top_p", why=_SAMPLING),
    _f32("runtime_top_p_min", status=DEFAULT_ONLY, default=1e-6, why="top-p decay"),
    _f32("runtime_top_p_decay", status=DEFAULT_ONLY, default=1.0, why="top-p decay"),
    _i32("runtime_top_p_reset_ids", status=DEFAULT_ONLY, default=-1, why="top-p decay"),
    _f32("len_penalty", status=NO_EFFECT, why="beam search only"),
    _bool("early_stopping", status=NO_EFFECT, why="beam search only"),
    _f32("repetition_penalty", why=_SAMPLING),
    _i32("min_tokens", why="fewest new tokens before end_id counts"),
    _f32("beam_search_diversity_rate", status=NO_EFFECT, why="beam search only"),
    _f32("presence_penalty", why=_SAMPLING),
    _f32("frequency_penalty", why=_SAMPLING),
    TensorSpec("seed", "TYPE_UINT64", (1,), why=_SAMPLING),
    _bool("return_log_probs", status=DEFAULT_ONLY, default=False, why="no log-probs"),
    _bool("return_context_logits", status=DEFAULT_ONLY, default=False, why="no logits"),
    _bool("return_generation_logits", status=DEFAULT_ONLY, default=False, why="no logits"),
    _bool("return_perf_metrics", why="KV blocks and timestamps of the request"),
    _bool("return_num_input_tokens", why="adds num_input_tokens (prompt length)"),
    _bool("return_num_output_tokens", why="adds num_output_tokens (generated, prompt excluded)"),
    _bool("exclude_input_in_output", why="overrides the model parameter (default false)"),
    _bool("stop", why="ends the in-flight request with the same request id"),
    _bool("streaming", why="decoupled configuration only"),
    _tensor("prompt_embedding_table", "TYPE_FP16", (-1, -1), "prompt tuning is not served"),
    _tensor("prompt_table_extra_ids", "TYPE_UINT64", (-1,), "prompt tuning is not served"),
    _i32("prompt_vocab_size", status=DEFAULT_ONLY, why="prompt tuning is not served"),
    _tensor("cross_attention_mask", "TYPE_BOOL", (-1, -1), _NO_MM),
    TensorSpec("mrope_rotary_cos_sin", "TYPE_FP32", (-1,), DEFAULT_ONLY, why=_NO_MM, scalar=False),
    TensorSpec("mrope_position_deltas", "TYPE_INT64", (1,), DEFAULT_ONLY, why=_NO_MM, scalar=False),
    TensorSpec("lora_task_id", "TYPE_UINT64", (1,), DEFAULT_ONLY, why=_NO_LORA),
    _tensor("lora_weights", "TYPE_FP16", (-1, -1), _NO_LORA),
    _tensor("lora_config", "TYPE_INT32", (-1, 3), _NO_LORA),
    _tensor("context_phase_params", "TYPE_UINT8", (-1,), "disaggregated serving is not served"),
    _tensor("skip_cross_attn_blocks", "TYPE_BOOL", (1,), _NO_MM),
    _tensor("retention_token_range_starts", "TYPE_INT32", (-1,), _NO_RETENTION),
    _tensor("retention_token_range_ends", "TYPE_INT32", (-1,), _NO_RETENTION),
    _tensor("retention_token_range_priorities", "TYPE_INT32", (-1,), _NO_RETENTION),
    _tensor("retention_token_range_durations_ms", "TYPE_INT32", (-1,), _NO_RETENTION),
    _tensor("retention_decode_priority", "TYPE_INT32", (1,), _NO_RETENTION),
    _tensor("retention_decode_duration_ms", "TYPE_INT32", (1,), _NO_RETENTION),
    _tensor("guided_decoding_guide_type", "TYPE_STRING", (1,), _NO_GUIDE),
    _tensor("guided_decoding_guide", "TYPE_STRING", (1,), _NO_GUIDE),
    _tensor("lookahead_window_size", "TYPE_INT32", (1,), "lookahead decoding is not served"),
    _tensor("lookahead_ngram_size", "TYPE_INT32", (1,), "lookahead decoding is not served"),
    _tensor(
        "lookahead_verification_set_size", "TYPE_INT32", (1,), "lookahead decoding is not served"
    ),
    # older names, still read so existing clients keep working
    TensorSpec("random_seed", "TYPE_UINT64", (1,), why="older name of seed", ours_only=True),
    _i32("min_length", why="older name of min_tokens", ours_only=True),
)

# beam_width and num_return_sequences are honoured only at 1: checked as ranges
_ONE_ONLY = {"beam_width", "num_return_sequences"}

OUTPUTS: tuple[TensorSpec, ...] = (
    TensorSpec("output_ids", "TYPE_INT32", (-1, -1), why="always"),
    TensorSpec("sequence_length", "TYPE_INT32", (-1,), why="always"),
    TensorSpec("cum_log_probs", "TYPE_FP32", (-1,), DEFAULT_ONLY, why="never (no log-probs)"),
    TensorSpec("output_log_probs", "TYPE_FP32", (-1, -1), DEFAULT_ONLY, why="never"),
    TensorSpec("context_logits", "TYPE_FP32", (-1, -1), DEFAULT_ONLY, why="never"),
    TensorSpec("generation_logits", "TYPE_FP32", (-1, -1, -1), DEFAULT_ONLY, why="never"),
    TensorSpec("batch_index", "TYPE_INT32", (1,), why="when a request carries several rows"),
    TensorSpec(
        "sequence_index",
        "TYPE_INT32",
        (1,),
        why="not sent (one sequence per row, as TensorRT-LLM at 1)",
    ),
    TensorSpec("context_phase_params", "TYPE_UINT8", (-1,), DEFAULT_ONLY, why="never"),
    TensorSpec("kv_cache_alloc_new_blocks", "TYPE_INT32", (1,), why="return_perf_metrics"),
    TensorSpec("kv_cache_reused_blocks", "TYPE_INT32", (1,), why="return_perf_metrics (0)"),
    TensorSpec("kv_cache_alloc_total_blocks", "TYPE_INT32", (1,), why="return_perf_metrics"),
    TensorSpec("arrival_time_ns", "TYPE_INT64", (1,), why="return_perf_metrics"),
    TensorSpec("first_scheduled_time_ns", "TYPE_INT64", (1,), why="return_perf_metrics"),
    TensorSpec("first_token_time_ns", "TYPE_INT64", (1,), why="return_perf_metrics"),
    TensorSpec("last_token_time_ns", "TYPE_INT64", (1,), why="return_perf_metrics"),
    TensorSpec("acceptance_rate", "TYPE_FP32", (1,), why="return_perf_metrics (0)"),
    TensorSpec("total_accepted_draft_tokens", "TYPE_INT32", (1,), why="return_perf_metrics (0)"),
    TensorSpec("total_draft_tokens", "TYPE_INT32", (1,), why="return_perf_metrics (0)"),
    TensorSpec("num_input_tokens", "TYPE_INT32", (1,), why="return_num_input_tokens"),
    TensorSpec("num_output_tokens", "TYPE_INT32", (1,), why="return_num_output_tokens"),
)

INPUT_NAMES: tuple[str, ...] = tuple(s.name for s in INPUTS)
INPUT_BY_NAME = {s.name: s for s in INPUTS}


def _block(spec: TensorSpec, is_input: bool) -> str:
    dims = ", ".join(str(d) for d in spec.dims)
    lines = [
        "  {",
        f'    name: "{spec.name}"',
        f"    data_type: {spec.dtype}",
        f"    dims: [ {dims} ]",
    ]
    if is_input:
        if spec.scalar and spec.dims == (1,):
            lines.append("    reshape: { shape: [ ] }")
        if spec.ragged:
            lines.append("    allow_ragged_batch: true")
        if spec.name not in ("input_ids", "request_output_len"):
            lines.append("    optional: true")
    lines.append("  }")
    return "\n".join(lines)


def render_io() -> str:
    """The input [...] and output [...] blocks of config.pbtxt."""
    ins = ",\n".join(_block(s, True) for s in INPUTS)
    outs = ",\n".join(_block(s, False) for s in OUTPUTS)
    return f"input [\n{ins}\n]\noutput [\n{outs}\n]\n"


def _dims(spec: TensorSpec) -> str:
    return "[" + ", ".join(str(d) for d in spec.dims) + "]"


def render_doc_tables() -> str:
    """The generated part of docs/COMPATIBILITY.md: inputs, outputs, template keys."""
    from . import trtllm_params

    rows = ["| input | type | dims | here | notes |", "|---|---|---|---|---|"]
    for s in INPUTS:
        status = s.status
        if s.status == DEFAULT_ONLY:
            status = (
                f"refused unless {str(s.default).lower()}"
                if s.default is not None
                else "refused unless absent or empty"
            )
        elif s.name in _ONE_ONLY:
            status = f"supported at {s.default} only"
        name = f"`{s.name}`" + (" (ours)" if s.ours_only else "")
        rows.append(f"| {name} | {s.dtype[5:]} | {_dims(s)} | {status} | {s.why} |")
    out = ["| output | type | dims | filled |", "|---|---|---|---|"]
    for s in OUTPUTS:
        out.append(f"| `{s.name}` | {s.dtype[5:]} | {_dims(s)} | {s.why} |")
    return "\n".join(
        [
            "### Inputs",
            "",
            *rows,
            "",
            "### Outputs",
            "",
            *out,
            "",
            "### config.pbtxt parameters of TensorRT-LLM's template",
            "",
            trtllm_params.markdown(),
            "",
        ]
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["io"]:
        print(render_io(), end="")
    elif sys.argv[1:] == ["doc"]:
        print(render_doc_tables(), end="")
    else:
        print("usage: python -m dynabatch.trtllm_io io|doc", file=sys.stderr)
        sys.exit(2)
