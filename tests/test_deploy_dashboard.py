"""The chart against a real tritonserver serving the model: every series the Grafana
dashboard, the KEDA ScaledObject and the endpoint picker query exists on the model's live /metrics (with the
label values the queries select), and the liveness probe's inference request succeeds
on a serving model and fails once the model is gone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helm_python import Chart
from triton_server import wait_for

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "dynabatch"
DASHBOARD = CHART / "files" / "dashboard.json"
OWN_PREFIXES = ("nv_trt_llm_", "dynabatch_")

FAST = dict(
    sim_profile="llama-2-13b-a100-40gb",
    sim_time_scale=0.2,
    batch_policy="adaptive",
    max_batch_size=16,
    metrics_interval_ms=50,
)

SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric, {label: value}) for every `name{...}` in a PromQL expression; only
    equality matchers; template variables resolved to this test's model."""
    out = []
    for name, body in SELECTOR.findall(expr):
        if not name.startswith(OWN_PREFIXES):
            continue
        labels = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', body))
        labels = {k: v.replace("$model", "tensorrt_llm") for k, v in labels.items()}
        labels.pop("namespace", None)  # added by Prometheus from the pod, not exported
        out.append((name, labels))
    return out


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def chart_docs() -> list[dict]:
    with Chart.load(CHART) as chart:
        files = chart.render({}, name="llm", namespace="serving")
    return [d for text in files.values() for d in yaml.safe_load_all(text) if d]


def scaler_exprs() -> list[str]:
    (so,) = [d for d in chart_docs() if d["kind"] == "ScaledObject"]
    return [t["metadata"]["query"] for t in so["spec"]["triggers"]]


def picker_selectors() -> list[tuple[str, dict[str, str]]]:
    """The series the endpoint picker is told to read (its `--*-metric` flags, written
    `name{label=value}` without quotes)."""
    (epp,) = [
        d
        for d in chart_docs()
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-epp")
    ]
    out = []
    for arg in epp["spec"]["template"]["spec"]["containers"][0]["args"]:
        flag, _, spec = arg.partition("=")
        if flag.endswith("-metric") and spec:
            name, _, body = spec.rstrip("}").partition("{")
            out.append((name, dict(pair.split("=") for pair in body.split(",") if pair)))
    return out


def exported(text: str) -> dict[str, list[dict[str, str]]]:
    series: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        name, rest = line.split("{", 1)
        series.setdefault(name, []).append(dict(re.findall(r'(\w+)="([^"]*)"', rest)))
    return series


def test_selector_parser_reads_names_and_equality_labels():
    expr = 'sum(a_b{x="1"}) / nv_trt_llm_request_metrics{request_type="waiting",model="$model"}'
    assert selectors(expr) == [
        ("nv_trt_llm_request_metrics", {"request_type": "waiting", "model": "tensorrt_llm"})
    ]


@pytest.fixture(scope="module")
def served(triton):
    triton.load("tensorrt_llm", **FAST)
    return triton


def liveness_script(http_url: str) -> str:
    (dep,) = [
        d
        for d in chart_docs()
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "llm-dynabatch"
    ]
    cmd = dep["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["exec"]["command"]
    assert cmd[:2] == ["python3", "-c"]
    return cmd[2].replace("127.0.0.1:8000", http_url)


def test_every_dashboard_and_scaler_series_is_on_live_metrics(served):
    # one real request through the probe's own script so every gauge has been set
    probe = subprocess.run(
        [sys.executable, "-c", liveness_script(served.http_url)], capture_output=True, timeout=60
    )
    assert probe.returncode == 0, probe.stderr.decode()
    wait_for(lambda: (served.metric("dynabatch_requests_total", outcome="completed") or 0) >= 1)
    live = exported(served.metrics())
    picker = picker_selectors()
    assert len(picker) == 2  # waiting queue and KV fraction
    wanted = [s for e in dashboard_exprs() + scaler_exprs() for s in selectors(e)] + picker
    assert len(wanted) >= 22
    missing = [
        (name, labels)
        for name, labels in wanted
        if not any(labels.items() <= sample.items() for sample in live.get(name, []))
    ]
    assert not missing, f"queried but not exported: {missing}"
    # the endpoint picker's KV usage series is among what the dashboard reads
    assert ("nv_trt_llm_kv_cache_block_metrics", {"kv_cache_block_type": "fraction"}) in [
        (n, {k: v for k, v in lab.items() if k != "model"}) for n, lab in wanted
    ]


def test_liveness_probe_fails_once_the_model_is_gone(served):
    script = liveness_script(served.http_url)
    ok = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert ok.returncode == 0, ok.stderr.decode()
    served.unload("tensorrt_llm")
    try:
        gone = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
        assert gone.returncode != 0
    finally:
        served.load("tensorrt_llm", **FAST)
