"""Data shipped with the package: the Azure LLM inference traces (CC-BY 4.0; see
traces/README.md for the attribution, which must stay beside the files)."""

from pathlib import Path

TRACE_DIR = Path(__file__).resolve().parent / "traces"
CONV_TRACE = TRACE_DIR / "azure_llm_2023_conv.csv"
CODE_TRACE = TRACE_DIR / "azure_llm_2023_code.csv"

BUNDLED = {"conv": CONV_TRACE, "code": CODE_TRACE}


def resolve_trace(name_or_path) -> Path:
    """`conv` / `code` name the bundled traces; anything else is a path."""
    return BUNDLED.get(str(name_or_path), Path(name_or_path))
