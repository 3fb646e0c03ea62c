"""The Dockerfile cannot be built here (no Docker, no GPU): parse it and check what it
must do, and that the docs name the same image."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dynabatch.engines.trtllm_common import TRITON_TRTLLM_IMAGE

ROOT = Path(__file__).resolve().parent.parent
TAG_RE = re.compile(r"nvcr\.io/nvidia/tritonserver:[\w.\-]+")


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # join continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def of(op: str) -> list[str]:
    return [rest for o, rest in instructions() if o == op]


def test_base_image_is_pinned_triton_with_tensorrt_llm():
    froms = of("FROM")
    assert len(froms) == 1
    image = froms[0].split()[0]
    assert image == TRITON_TRTLLM_IMAGE
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-trtllm-python-py3", image)


def test_package_is_installed_from_the_repository():
    copies = " ".join(of("COPY"))
    assert "pyproject.toml" in copies and "backend/" in copies
    assert any(re.search(r"pip install\b.*\s\.(\s|$)", run) for run in of("RUN"))


def test_model_repository_is_copied_and_served():
    dest = None
    for rest in of("COPY"):
        src, *_, target = rest.split()
        if src.rstrip("/") == "model_repository":
            dest = target.rstrip("/")
    assert dest, "model_repository/ is not copied into the image"
    cmd = json.loads(of("CMD")[-1])  # exec form
    entry = json.loads(of("ENTRYPOINT")[-1]) if of("ENTRYPOINT") else []
    argv = entry + cmd
    assert "tritonserver" in argv
    repo_args = [a.split("=", 1)[1] for a in argv if a.startswith("--model-repository=")]
    assert repo_args == [dest]


def test_dockerignore_keeps_local_state_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_docs_name_the_same_image():
    gpu_md = (ROOT / "docs" / "GPU.md").read_text()
    assert TRITON_TRTLLM_IMAGE in gpu_md
    assert "docker build" in gpu_md and "--model-repository" in gpu_md
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        if doc.exists():
            tags = set(TAG_RE.findall(doc.read_text()))
            assert tags <= {TRITON_TRTLLM_IMAGE}, f"{doc.name} names another image: {tags}"


def test_install_hint_names_the_image():
    from dynabatch.engines.trtllm_common import INSTALL_HINT

    assert TRITON_TRTLLM_IMAGE in INSTALL_HINT
