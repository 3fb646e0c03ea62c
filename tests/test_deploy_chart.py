"""deploy/dynabatch: the Helm chart renders (Helm's own Go SDK, from the PyPI wheel
helm-python-sdk), lints, and every object validates offline: Kubernetes kinds against
the OpenAPI schemas bundled in kubernetes-validate, the InferencePool against its CRD
schema shipped in deploy/schemas/. The model parameters the chart sets pass dynabatch's
own parser."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dynabatch.deploy_config import main as deploy_config_main
from helm_python import Chart, lint

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "dynabatch"
CRD = ROOT / "deploy" / "schemas" / "inference.networking.k8s.io_inferencepools.yaml"
KUBE_VERSION = "1.31.0"  # a supported Kubernetes release; the chart asks for >= 1.29


def render(values: dict | None = None) -> list[dict]:
    with Chart.load(CHART) as chart:
        files = chart.render(values or {}, name="llm", namespace="serving")
    docs = []
    for text in files.values():
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return render()


def test_chart_lints_clean():
    result = lint(CHART)
    assert result["errors"] == [], result


def test_kubernetes_objects_validate_against_the_bundled_schemas(docs):
    kinds = set()
    for doc in docs:
        if doc["kind"] in CRDS:  # custom resources: their CRD schemas, below
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        kinds.add(doc["kind"])
    assert {"Deployment", "Service", "ConfigMap", "Role", "RoleBinding"} <= kinds


def test_a_broken_object_is_caught_by_the_validator(docs):
    """The validator really checks: a container port as a string fails."""
    deployment = by_kind(docs, "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


CRDS = {  # kind: (CRD file in deploy/schemas/, served version)
    "InferencePool": ("inference.networking.k8s.io_inferencepools.yaml", "v1"),
    "ScaledObject": ("keda.sh_scaledobjects.yaml", "v1alpha1"),
    "PodMonitor": ("monitoring.coreos.com_podmonitors.yaml", "v1"),
}


def crd_schema(kind: str) -> dict:
    name, served = CRDS[kind]
    crd = yaml.safe_load((CRD.parent / name).read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == served]
    return version["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_custom_resources_validate_against_their_crds(docs, kind):
    (obj,) = by_kind(docs, kind)
    name, served = CRDS[kind]
    assert obj["apiVersion"].endswith("/" + served)
    jsonschema.validate(obj, crd_schema(kind))


def test_inference_pool_schema_catches_a_missing_field(docs):
    (pool,) = by_kind(docs, "InferencePool")
    assert pool["apiVersion"] == "inference.networking.k8s.io/v1"
    broken = {**pool, "spec": {k: v for k, v in pool["spec"].items() if k != "targetPorts"}}
    with pytest.raises(jsonschema.ValidationError, match="targetPorts"):
        jsonschema.validate(broken, crd_schema("InferencePool"))


def test_inference_pool_selects_the_triton_pods_with_the_engine_type_label(docs):
    (pool,) = by_kind(docs, "InferencePool")
    model = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "llm-dynabatch"][0]
    pod_labels = model["spec"]["template"]["metadata"]["labels"]
    selector = pool["spec"]["selector"]["matchLabels"]
    assert selector["llm-d.ai/engine-type"] == "triton-tensorrt-llm"
    assert selector.items() <= pod_labels.items()
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    # the picker it names exists, on the port it names
    ref = pool["spec"]["endpointPickerRef"]
    (svc,) = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == ref["name"]]
    assert ref["port"]["number"] in [p["port"] for p in svc["spec"]["ports"]]


def test_endpoint_picker_scrapes_tritons_metrics_port_with_queue_and_kv_scorers(docs):
    (epp,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-epp")]
    args = epp["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--model-server-metrics-port=8002" in args
    assert "--refresh-metrics-interval=50ms" in args
    assert "--metrics-staleness-threshold=200ms" in args
    (cm,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-epp")]
    config = yaml.safe_load(cm["data"]["epp.yaml"])
    assert config["kind"] == "EndpointPickerConfig"
    refs = [p["pluginRef"] for p in config["schedulingProfiles"][0]["plugins"]]
    assert refs == ["queue-scorer", "kv-cache-utilization-scorer", "max-score-picker"]


def picker_of(docs: list[dict]) -> tuple[dict, dict]:
    """The endpoint picker's container and its EndpointPickerConfig."""
    (epp,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-epp")]
    (cm,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-epp")]
    return epp["spec"]["template"]["spec"]["containers"][0], yaml.safe_load(cm["data"]["epp.yaml"])


def test_endpoint_picker_reads_tritons_series_not_vllms(docs):
    """The picker's metric names default to vLLM's; the chart names Triton's, the ones
    dynabatch exports (checked against a live /metrics in test_deploy_dashboard.py)."""
    for rendered in (docs, render({"inferencePool": {"picker": "llm-d"}})):
        args = picker_of(rendered)[0]["args"]
        assert (
            "--total-queued-requests-metric=nv_trt_llm_request_metrics{request_type=waiting}"
            in args
        )
        assert (
            "--kv-cache-usage-percentage-metric="
            "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}" in args
        )


def test_llm_d_picker_adds_the_active_request_scorer():
    """One value deploys llm-d's inference scheduler with its active-request-scorer
    next to the queue and KV scorers (llm-d's default weights for those two); every
    object still validates and the pool still points at the picker."""
    docs = render({"inferencePool": {"picker": "llm-d"}})
    container, config = picker_of(docs)
    assert container["image"].startswith("ghcr.io/llm-d/llm-d-inference-scheduler:")
    assert [p["type"] for p in config["plugins"]] == [
        "queue-scorer",
        "kv-cache-utilization-scorer",
        "active-request-scorer",
        "max-score-picker",
    ]
    weights = {p["pluginRef"]: p.get("weight") for p in config["schedulingProfiles"][0]["plugins"]}
    assert weights == {
        "queue-scorer": 2,
        "kv-cache-utilization-scorer": 2,
        "active-request-scorer": 2,
        "max-score-picker": None,
    }
    for doc in docs:
        if doc["kind"] in CRDS:
            jsonschema.validate(doc, crd_schema(doc["kind"]))
        else:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    (pool,) = by_kind(docs, "InferencePool")
    assert pool["spec"]["endpointPickerRef"]["name"] == "llm-dynabatch-epp"
    # newer llm-d images count in-flight requests in a plugin of their own
    newer = render(
        {"inferencePool": {"picker": "llm-d", "endpointPicker": {"llmdInflightLoadProducer": True}}}
    )
    assert "inflight-load-producer" in [p["type"] for p in picker_of(newer)[1]["plugins"]]


def triton_container(docs: list[dict]) -> dict:
    model = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "llm-dynabatch"][0]
    return model["spec"]["template"]["spec"]["containers"][0]


def test_gpus_follow_tensor_and_pipeline_parallelism():
    docs = render({"model": {"tensorParallelSize": 2, "pipelineParallelSize": 2}})
    container = triton_container(docs)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 4
    model = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "llm-dynabatch"][0]
    init = model["spec"]["template"]["spec"]["initContainers"][0]["command"]
    assert "tensor_parallel_size=2" in init and "pipeline_parallel_size=2" in init


def test_llmapi_launcher_wraps_tritonserver():
    docs = render({"model": {"launcher": "trtllm-llmapi-launch"}})
    assert triton_container(docs)["command"][:2] == ["trtllm-llmapi-launch", "tritonserver"]


def test_liveness_sends_an_inference_request(docs):
    probe = triton_container(docs)["livenessProbe"]
    script = probe["exec"]["command"][-1]
    assert "/v2/models/tensorrt_llm/generate" in script and "request_output_len" in script
    assert probe["timeoutSeconds"] > 2


def test_autoscaling_reads_waiting_queue_and_kv_fraction(docs):
    (so,) = by_kind(docs, "ScaledObject")
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["spec"]["scaleTargetRef"]["name"] == "llm-dynabatch"
    queries = {t["name"]: t["metadata"]["query"] for t in so["spec"]["triggers"]}
    assert 'request_type="waiting"' in queries["waiting-requests"]
    assert 'kv_cache_block_type="used"' in queries["kv-cache-fraction"]
    assert 'namespace="serving"' in queries["waiting-requests"]
    # KEDA owns the replica count: the model's Deployment must not fight it
    model = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "llm-dynabatch"][0]
    assert "replicas" not in model["spec"]


def test_pod_monitor_scrapes_the_metrics_port(docs):
    (pm,) = by_kind(docs, "PodMonitor")
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert "metrics" in [p["name"] for p in triton_container(docs)["ports"]]


def test_model_parameters_of_the_chart_pass_dynabatchs_parser(docs, tmp_path, capsys):
    """Run the init container's command (python -m dynabatch.deploy_config) on the
    repository's model_repository/."""
    model = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "llm-dynabatch"][0]
    cmd = model["spec"]["template"]["spec"]["initContainers"][0]["command"]
    assert cmd[:3] == ["python3", "-m", "dynabatch.deploy_config"]
    args = [re.sub(r"^--source=.*", f"--source={ROOT / 'model_repository'}", a) for a in cmd[3:]]
    args = [re.sub(r"^--dest=.*", f"--dest={tmp_path / 'repo'}", a) for a in args]
    assert deploy_config_main(args) == 0
    text = (tmp_path / "repo" / "tensorrt_llm" / "config.pbtxt").read_text()
    assert '"trtllm_executor"' in text and '"/models/engine"' in text


def test_a_bad_model_parameter_stops_the_init_step_naming_it(tmp_path, capsys):
    rc = deploy_config_main(
        [
            f"--source={ROOT / 'model_repository'}",
            f"--dest={tmp_path / 'repo'}",
            "batch_policy=fastest",
        ]
    )
    assert rc == 2
    assert "batch_policy" in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()


def test_bad_chart_values_fail_the_render_naming_the_field():
    from helm_python import HelmValuesError

    with pytest.raises(HelmValuesError, match="tensorParallelSize"):
        render({"model": {"tensorParallelSize": 0}})
    with pytest.raises(HelmValuesError, match="launcher"):
        render({"model": {"launcher": "mpirun"}})
    with pytest.raises(HelmValuesError, match="picker"):
        render({"inferencePool": {"picker": "envoy"}})
