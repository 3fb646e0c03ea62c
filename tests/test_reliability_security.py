"""Secure defaults: every server the project starts binds 127.0.0.1 unless told
otherwise, and no config.pbtxt parameter can make the model load or run code."""

import re
from pathlib import Path

import pytest
from dynabatch.config import all_param_specs, load_config
from dynabatch.params import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ADDRESS_FLAGS = ("--http-address", "--grpc-address", "--metrics-address")
# str parameters without a fixed list of choices, and what they may reach: only
# TensorRT-LLM's own loaders (an engine directory / checkpoint / tokenizer, never a
# Python file of ours) and a list of integers.
FREE_TEXT = {
    "gpt_model_path": "TensorRT-LLM engine dir / checkpoint, opened by TensorRT-LLM",
    "tokenizer_dir": "tokenizer dir, opened by TensorRT-LLM",
    "gpu_device_ids": "comma-separated integers (parsed with int())",
    "executor_worker_path": "executable TensorRT-LLM spawns over MPI (orchestrator mode); "
    "set by whoever writes config.pbtxt, who already controls the model repository's code",
}


def _launchers():
    """Files that start tritonserver: they pass --model-repository to it."""
    files = [p for p in (ROOT / "scripts").iterdir() if p.is_file()]
    files += list((ROOT / "backend").rglob("*.py")) + [ROOT / "tests" / "triton_server.py"]
    return [p for p in files if "--model-repository" in p.read_text(errors="replace")]


def test_every_tritonserver_launcher_binds_loopback():
    launchers = _launchers()
    names = {p.name for p in launchers}
    # scripts/serve, and dynabatch.live.server (the demo, sweeps, transport and the
    # tests' launcher, tests/triton_server.py, all start tritonserver through it)
    assert {"serve", "server.py"} <= names, names
    assert "LiveTritonServer" in (ROOT / "tests" / "triton_server.py").read_text()
    for path in launchers:
        text = path.read_text()
        for flag in ADDRESS_FLAGS:
            values = re.findall(re.escape(flag) + r'[= ]"?([^"\s,)]+)', text)
            assert values, f"{path}: starts tritonserver without {flag} (Triton binds 0.0.0.0)"
            for value in values:
                assert value in ("127.0.0.1", "$HOST"), f"{path}: {flag}={value}"
        if "$HOST" in text:  # scripts/serve: the default, overridable with --host
            assert re.search(r"^HOST=127\.0\.0\.1\b", text, re.M), f"{path}: HOST default"


def test_scripts_never_default_to_all_interfaces():
    for path in (ROOT / "scripts").iterdir():
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                if "0.0.0.0" in line:
                    # only the line that prints a usable URL when --host 0.0.0.0 was given
                    assert "SHOW" in line, f"{path}: {line.strip()}"


def test_text_parameters_are_choices_or_reviewed():
    for spec in all_param_specs():
        if spec.kind is str and not spec.choices:
            assert spec.name in FREE_TEXT, (
                f"new free-text parameter '{spec.name}': give it choices or review what it "
                "can reach and add it to FREE_TEXT (docs/RELIABILITY.md)"
            )


@pytest.mark.parametrize(
    "raw,name",
    [
        ({"sim_profile": "/tmp/evil.py"}, "sim_profile"),
        ({"sim_profile": "../../profiles.py"}, "sim_profile"),
        ({"engine": "os.system"}, "engine"),
        ({"engine": "dynabatch.engines.simulated"}, "engine"),
        ({"batch_policy": "tests.evil"}, "batch_policy"),
        ({"executor_module": "evil"}, "executor_module"),
        ({"enable_fault_injection": "maybe"}, "enable_fault_injection"),
    ],
)
def test_module_or_path_like_values_are_refused(raw, name):
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    assert info.value.name == name


def test_fault_injection_is_off_by_default():
    assert load_config({}).enable_fault_injection is False


def test_no_dynamic_code_from_input():
    """No eval/exec/pickle/runpy in the package; import_module only with names from
    fixed tables (engines, CLI modules, pynvml, tensorrt_llm)."""
    for path in (ROOT / "backend" / "dynabatch").rglob("*.py"):
        text = path.read_text()
        for bad in ("__import__(", "pickle.", "runpy", "marshal."):
            assert bad not in text, f"{path}: {bad}"
        # the builtins; a method of that name (BLS's InferenceRequest.exec) is not one
        assert not re.search(r"(?<![.\w])(eval|exec)\(", text), f"{path}: eval/exec"
        for arg in re.findall(r"import_module\(([^)]*)\)", text):
            assert arg.strip() in (
                "name",
                "ENGINES[engine_name][0]",
                "module_name",
                '"pynvml"',
                "module",
            ), f"{path}: import_module({arg})"
