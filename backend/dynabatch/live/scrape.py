"""Sample Triton's Prometheus /metrics in a background thread.

Keeps only the families that describe the batcher (TensorRT-LLM-compatible
`nv_trt_llm_*` and our `dynabatch_*`) plus Triton's inference counters.
"""

from __future__ import annotations

import csv
import re
import threading
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

KEEP_PREFIXES = ("nv_trt_llm_", "dynabatch_", "nv_inference_request_success", "nv_inference_count")
_LINE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)"
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the scraper started
    name: str
    labels: tuple  # sorted (key, value) pairs
    value: float

    def label(self, key: str, default: str = "") -> str:
        return dict(self.labels).get(key, default)


def parse_prometheus(
    text: str, prefixes: Iterable[str] = KEEP_PREFIXES, t: float = 0.0
) -> list[Sample]:
    prefixes = tuple(prefixes)
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m or not m.group("name").startswith(prefixes):
            continue
        try:
            value = float(m.group("value"))
        except ValueError:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group("labels") or "")))
        out.append(Sample(t, m.group("name"), labels, value))
    return out


class MetricsScraper:
    """Polls a /metrics URL every `interval_s` until stopped (bounded by `max_samples`)."""

    def __init__(self, url: str, interval_s: float = 0.5, max_samples: int = 20000) -> None:
        self.url = url
        self.interval_s = interval_s
        self.max_samples = max_samples
        self.samples: list[Sample] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0 = time.monotonic()

    def start(self, t0: float | None = None) -> MetricsScraper:
        self.t0 = time.monotonic() if t0 is None else t0
        self._thread = threading.Thread(target=self._run, name="metrics-scraper", daemon=True)
        self._thread.start()
        return self

    def scrape_once(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=2) as r:
                text = r.read().decode("utf-8", "replace")
        except OSError:
            self.errors += 1
            return
        self.samples.extend(parse_prometheus(text, t=time.monotonic() - self.t0))

    def _run(self) -> None:
        rounds = 0
        while not self._stop.is_set() and len(self.samples) < self.max_samples and rounds < 100000:
            self.scrape_once()
            rounds += 1
            self._stop.wait(self.interval_s)

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        return self.samples

    def __enter__(self) -> MetricsScraper:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def series(samples: Iterable[Sample], name: str, **labels: str) -> list[tuple[float, float]]:
    """(t, value) of one family, filtered by labels."""
    return [
        (s.t, s.value)
        for s in samples
        if s.name == name and all(s.label(k) == v for k, v in labels.items())
    ]


def write_csv(samples: Iterable[Sample], path: Path, extra: dict | None = None) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*(extra or {}).keys(), "t_s", "name", "labels", "value"])
        for s in samples:
            w.writerow(
                [
                    *(extra or {}).values(),
                    f"{s.t:.3f}",
                    s.name,
                    ";".join(f"{k}={v}" for k, v in s.labels),
                    s.value,
                ]
            )
