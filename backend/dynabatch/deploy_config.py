"""`python -m dynabatch.deploy_config`: copy a model repository and set one model's
config.pbtxt parameters, checked by the model's own parser.

The Helm chart runs it in an init container, so a bad value stops the pod before
Triton starts, with a message naming the parameter (instead of a model that fails to
load behind a pod that looks alive):

    python -m dynabatch.deploy_config --source /opt/dynabatch/model_repository \\
        --dest /run/dynabatch/model_repository --model tensorrt_llm \\
        engine=trtllm_executor gpt_model_path=/models/engine tensor_parallel_size=2
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .config import load_config
from .live.pbtxt import get_parameters, set_parameters
from .params import ConfigError


def parse_assignments(items: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(item, None, "a KEY=VALUE assignment")
        values[key.strip()] = value
    return values


def configure(source: Path, dest: Path, model: str, values: dict[str, str]) -> dict[str, str]:
    """Copy `source` to `dest` (replacing it), set `values` in `model`'s config.pbtxt,
    check the result with `load_config`, and return the model's parameters."""
    config = source / model / "config.pbtxt"
    if not config.is_file():
        raise FileNotFoundError(f"--model {model!r}: no {config}")
    text = set_parameters(config.read_text(), values)
    params = get_parameters(text)
    load_config(params)  # raises ConfigError naming the first bad parameter
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest)
    (dest / model / "config.pbtxt").write_text(text)
    return params


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dynabatch.deploy_config", description=__doc__)
    p.add_argument("--source", type=Path, required=True, help="model repository to copy")
    p.add_argument("--dest", type=Path, required=True, help="where the configured copy goes")
    p.add_argument("--model", default="tensorrt_llm", help="model whose parameters to set")
    p.add_argument("assignments", nargs="*", metavar="KEY=VALUE")
    args = p.parse_args(argv)
    try:
        params = configure(args.source, args.dest, args.model, parse_assignments(args.assignments))
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.dest / args.model}: " + ", ".join(f"{k}={v}" for k, v in sorted(params.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
