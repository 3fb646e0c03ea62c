"""Result rows -> text table, JSON and CSV (the same rows in all three)."""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

# (key, header, format) for the printed table; JSON/CSV carry every key of the row.
TABLE_COLUMNS = (
    ("policy", "policy", "{}"),
    ("output_tok_s", "out tok/s", "{:.0f}"),
    ("vs_oracle", "xoracle", "{:.2f}"),
    ("requests_s", "req/s", "{:.2f}"),
    ("goodput_rps", "goodput", "{:.2f}"),
    ("sla_attainment", "SLA%", "{:.1%}"),
    ("ttft_p50_s", "TTFT p50", "{:.2f}"),
    ("ttft_p99_s", "TTFT p99", "{:.2f}"),
    ("tpot_p50_s", "TPOT p50", "{:.3f}"),
    ("tpot_p99_s", "TPOT p99", "{:.3f}"),
    ("e2e_p99_s", "E2E p99", "{:.1f}"),
    ("mean_batch", "batch", "{:.1f}"),
    ("mean_kv_occupancy", "KV occ", "{:.0%}"),
    ("paused", "paused", "{}"),
    ("recomputed_tokens", "recomp tok", "{}"),
    ("rejected", "rej", "{}"),
)

CAPACITY_COLUMNS = (
    ("policy", "policy", "{}"),
    ("workload", "lengths from", "{}"),
    ("capacity_rps", "median req/s", "{:.3g}"),
    ("capacity_min_rps", "min", "{:.3g}"),
    ("capacity_max_rps", "max", "{:.3g}"),
    ("vs_trtllm_default", "x trtllm_default", "{:.2f}"),
    ("vs_best_static", "x best static", "{:.2f}"),
    ("vs_best_static_min", "worst seed", "{:.2f}"),
    ("wtl_best_static", "W/T/L best static", "{}"),
    ("probes", "runs", "{}"),
    ("slo_ttft_s", "TTFT SLO", "{:g}"),
    ("slo_tpot_s", "TPOT SLO", "{:g}"),
)


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def format_table(rows: Sequence[dict], columns=TABLE_COLUMNS) -> str:
    cells = [[header for _, header, _ in columns]]
    cells += [[_cell(row.get(key), fmt) for key, _, fmt in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for n, r in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(rows: Sequence[dict], columns=TABLE_COLUMNS) -> str:
    out = [
        "| " + " | ".join(h for _, h, _ in columns) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|",
    ]
    for row in rows:
        out.append("| " + " | ".join(_cell(row.get(k), f) for k, _, f in columns) + " |")
    return "\n".join(out)


def _clean(value):
    """JSON has no NaN/inf: write null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(rows: Sequence[dict], path: str | Path, meta: dict | None = None) -> None:
    doc = {
        "meta": {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(meta or {})},
        "rows": [{k: _clean(v) for k, v in row.items()} for row in rows],
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")


def read_json(path: str | Path) -> list[dict]:
    """The rows of a file `write_json` wrote (dynabatch fleet reads its baselines so)."""
    return json.loads(Path(path).read_text())["rows"]


def all_keys(rows: Iterable[dict]) -> list[str]:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    return keys


def write_csv(rows: Sequence[dict], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with Path(path).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=all_keys(rows))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if _clean(v) is None else v) for k, v in row.items()})


class Progress:
    """A plain-text progress bar on stderr: one line, rewritten in place on a TTY,
    one line per update otherwise (CI logs stay readable)."""

    def __init__(
        self, total: int, label: str = "", stream: TextIO | None = None, width: int = 30
    ) -> None:
        stream = stream or sys.stderr  # looked up now: tests and callers may swap it
        self.total, self.label, self.stream, self.width = max(total, 1), label, stream, width
        self.done = 0
        self.start = time.monotonic()
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def advance(self, note: str = "") -> None:
        self.done += 1
        frac = self.done / self.total
        bar = "#" * int(frac * self.width)
        text = (
            f"{self.label} [{bar:<{self.width}}] {self.done}/{self.total} "
            f"{time.monotonic() - self.start:5.1f}s {note}"
        )
        self.stream.write(("\r" + text + "\x1b[K") if self.tty else text + "\n")
        if self.tty and self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()
