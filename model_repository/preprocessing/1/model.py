"""Triton entry point: the logic lives in the dynabatch package (backend/dynabatch)."""

import os
import sys

try:
    import dynabatch  # noqa: F401  (installed, e.g. `pip install -e .`)
except ImportError:  # not installed: use the checkout this file belongs to
    sys.path.insert(
        0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "..", "backend")
    )

from dynabatch.text.triton_preprocessing import TritonPythonModel  # noqa: F401
