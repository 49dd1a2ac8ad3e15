"""mdaq: multilingual instruction-tuning data selection (M-DaQ) — library, pipeline and leaderboard.

The public names below are imported on first use (PEP 562), so ``import mdaq.quality.train`` does not import every
selector: each pipeline stage imports only what it runs, and its DVC dependencies follow that import closure
(``docs/architecture.md``, ``mdaq.pipeline.imports``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
EXPORTS = {
    "Params": "mdaq.config",
    "load_params": "mdaq.config",
    "ChecksumError": "mdaq.errors",
    "DataError": "mdaq.errors",
    "MissingAssetError": "mdaq.errors",
    "Registry": "mdaq.registry",
    "FEATURES": "mdaq.selectors",
    "SELECTORS": "mdaq.selectors",
    "BaseSelector": "mdaq.selectors",
    "get_selector": "mdaq.selectors",
    "Embedder": "mdaq.types",
    "Pool": "mdaq.types",
    "QualityScorer": "mdaq.types",
    "Sample": "mdaq.types",
    "sample_id": "mdaq.types",
}

__all__ = [*sorted(EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        value = getattr(importlib.import_module(EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mdaq' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *EXPORTS})
