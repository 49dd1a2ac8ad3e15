"""Per-pool features computed once and reused by every selector: QSM scores and sample embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.config import FeaturesConfig
from mdaq.io import atomic_path, read_finite_npy, read_samples, write_json
from mdaq.shards import is_shard_source, read_shard_samples
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
    out_dir: str | Path,
    quality: np.ndarray,
    embeddings: np.ndarray,
    record: dict[str, Any] | None = None,
    quality_regression: np.ndarray | None = None,
) -> None:
    """Save ``quality.npy`` (n,) and ``embeddings.npy`` (n, d) atomically, ``quality_regression.npy`` (CaR's
    scorer) when given (else any old one is removed), and the record when given."""
    out_dir = Path(out_dir)
    arrays = {"quality": quality, "embeddings": embeddings}
    if quality_regression is not None:
        arrays["quality_regression"] = quality_regression
    else:
        (out_dir / "quality_regression.npy").unlink(missing_ok=True)
    for name, arr in arrays.items():
        with atomic_path(out_dir / f"{name}.npy", suffix=".npy") as tmp:
            np.save(tmp, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
    if record is not None:
        write_json(out_dir / RECORD_FILE, record)


QUALITY_FILES = {"qsm": "quality.npy", "regression": "quality_regression.npy"}  # per BaseSelector.scorer


def scorer_needed(scorer: str, methods: Sequence[str]) -> bool:
    """Whether any of ``methods`` ranks with ``scorer`` (its selector's ``scorer`` and ``"quality"`` in
    ``requires``)."""
    from mdaq.selectors import SELECTORS

    return any(SELECTORS.get(m).scorer == scorer and "quality" in SELECTORS.get(m).requires for m in methods)


def score_regression(pool_path: str | Path, scorer_dir: str | Path, cfg: FeaturesConfig, device: str = "auto"):
    """CaR's regression scorer's scores of a pool (saved as ``quality_regression.npy`` by :func:`write_features`)."""
    from mdaq.models.lm import resolve_device
    from mdaq.quality.model import QualityModel

    model = QualityModel.load(scorer_dir, device=resolve_device(device))
    if model.kind != "regression":
        raise ValueError(f"{scorer_dir}: a {model.kind!r} model, expected CaR's regression scorer")
    return model.score_jsonl(pool_path, batch_size=cfg.batch_size)


def load_pool(
    lang: str,
    pool_path: str | Path,
    features_dir: str | Path | None = None,
    ifd_dir: str | Path | None = None,
    *,
    scorer: str = "qsm",
) -> Pool:
    """Read a pool and, when given, its features (``np.load`` with pickles disabled); shapes are checked, and a
    NaN or infinite quality score or embedding is refused naming the file, the row and the feature.

    ``pool_path`` is an mdaq pool JSONL or a sharded pool (a folder of Parquet shards or a glob, :mod:`mdaq.shards`;
    read whole into memory, every row in ``lang`` and its id its content hash); feature rows follow pool order.

    ``scorer`` picks the scores in ``Pool.quality``: ``"qsm"`` (``quality.npy``) or ``"regression"``
    (``quality_regression.npy``, CaR's scorer; a missing file names the ``car_scorer`` stage).
    """
    from mdaq.errors import MissingAssetError

    samples = read_shard_samples(pool_path, lang) if is_shard_source(pool_path) else read_samples(pool_path)
    features = {}
    if features_dir is not None:
        d = Path(features_dir)
        if scorer not in QUALITY_FILES:
            raise ValueError(f"scorer must be one of {tuple(QUALITY_FILES)}, got {scorer!r}")
        qfile = d / QUALITY_FILES[scorer]
        if not qfile.is_file():
            raise MissingAssetError(
                f"{qfile} not found: the {scorer!r} scores are computed by the features stage "
                "only when a method of the profile ranks with them (car_scorer stage)"
            )
        features["quality"] = read_finite_npy(qfile, "quality")
        features["embeddings"] = read_finite_npy(d / "embeddings.npy", "embeddings")
    if ifd_dir is not None and (Path(ifd_dir) / "ifd.npy").is_file():  # absent: the ifd stage was skipped
        features["ifd"] = np.load(Path(ifd_dir) / "ifd.npy", allow_pickle=False)
    return Pool(lang, samples, **features)
