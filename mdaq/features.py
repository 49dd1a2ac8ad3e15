"""Per-pool features computed once and reused by every selector: QSM scores and sample embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdaq.io import atomic_path, read_samples
from mdaq.types import Pool


def write_features(out_dir: str | Path, quality: np.ndarray, embeddings: np.ndarray) -> None:
    """Save ``quality.npy`` (n,) and ``embeddings.npy`` (n, d) atomically."""
    out_dir = Path(out_dir)
    for name, arr in (("quality", quality), ("embeddings", embeddings)):
        with atomic_path(out_dir / f"{name}.npy", suffix=".npy") as tmp:
            np.save(tmp, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)


def load_pool(
    lang: str, pool_path: str | Path, features_dir: str | Path | None = None, ifd_dir: str | Path | None = None
) -> Pool:
    """Read a pool and, when given, its features (``np.load`` with pickles disabled); shapes are checked."""
    samples = read_samples(pool_path)
    features = {}
    if features_dir is not None:
        d = Path(features_dir)
        features["quality"] = np.load(d / "quality.npy", allow_pickle=False)
        features["embeddings"] = np.load(d / "embeddings.npy", allow_pickle=False)
    if ifd_dir is not None:
        features["ifd"] = np.load(Path(ifd_dir) / "ifd.npy", allow_pickle=False)
    return Pool(lang, samples, **features)
