"""Per-pool features computed once and reused by every selector: QSM scores and sample embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mdaq.config import FeaturesConfig
from mdaq.io import atomic_path, read_samples, write_json
from mdaq.types import Pool

RECORD_FILE = "features_record.json"


def compute_features(
    pool_path: str | Path, qsm_dir: str | Path, encoder: str | Path, cfg: FeaturesConfig, device: str = "auto"
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """QSM scores and diversity embeddings of a pool, and the record of how they were computed.

    The QSM scores in its own precision (``qsm.precision`` as saved with it; ``auto`` resolves on this machine),
    the embeddings in ``cfg.precision``; both resolved precisions, the device, CPU model and threads go in the
    record (:func:`mdaq.hardware.hardware_record`).
    """
    from mdaq.features.embed import SentenceEmbedder, sample_text
    from mdaq.hardware import configure_torch
    from mdaq.models.lm import resolve_device
    from mdaq.quality.model import QualityModel

    device = resolve_device(device)
    hardware = configure_torch(cfg.precision, device, stage="features")
    qsm = QualityModel.load(qsm_dir, device=device)
    quality = qsm.score_jsonl(pool_path, batch_size=cfg.batch_size)
    samples = read_samples(pool_path)
    embedder = SentenceEmbedder(
        encoder, max_len=cfg.embed_max_len, batch_size=cfg.batch_size, device=device, precision=hardware["precision"]
    )
    embeddings = embedder.encode([sample_text(s.instruction, s.input, s.output) for s in samples])
    record = {
        "n": len(samples),
        "dim": int(embeddings.shape[1]),
        "embedder": embedder.name,
        "qsm_precision_requested": qsm.precision,
        "qsm_precision": qsm.precision_,
        "hardware": hardware,
    }
    return quality, embeddings, record


def write_features(
    out_dir: str | Path, quality: np.ndarray, embeddings: np.ndarray, record: dict[str, Any] | None = None
) -> None:
    """Save ``quality.npy`` (n,) and ``embeddings.npy`` (n, d) atomically, and the record when given."""
    out_dir = Path(out_dir)
    for name, arr in (("quality", quality), ("embeddings", embeddings)):
        with atomic_path(out_dir / f"{name}.npy", suffix=".npy") as tmp:
            np.save(tmp, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
    if record is not None:
        write_json(out_dir / RECORD_FILE, record)


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
    if ifd_dir is not None and (Path(ifd_dir) / "ifd.npy").is_file():  # absent: the ifd stage was skipped
        features["ifd"] = np.load(Path(ifd_dir) / "ifd.npy", allow_pickle=False)
    return Pool(lang, samples, **features)
