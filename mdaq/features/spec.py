"""What a feature engine computes and how (:class:`FeatureSpec`), one pool shard's task (:class:`ShardTask`), and the
fingerprint that decides which finished feature shards a resumed run may keep (``docs/scale.md``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdaq.config import IFDConfig
from mdaq.errors import DataError
from mdaq.shards.check import file_sha256

EMBED_PREFIX = "passage: "  # SentenceEmbedder's default (E5 passages); part of the fingerprint


@dataclass(frozen=True)
class FeatureSpec:
    """How features are computed: everything a worker needs to load the models (JSON-able, shipped to Ray actors).

    Two groups of features, either or both: the QSM score and the diversity embedding (``qsm_dir`` and ``encoder``),
    and IFD with its two losses (``ifd_model``).

    Parameters
    ----------
    qsm_dir, encoder : str or None
        A saved QSM folder (:meth:`mdaq.quality.model.QualityModel.save`) and the diversity encoder folder; both
        or neither.
    embed_max_len, batch_size : int
        Token limit of the embeddings and rows per forward pass (``features`` in ``params.yaml``).
    precision : str
        Of the embeddings (``auto``, ``fp32``, ``bf16``); the QSM uses the precision it was saved with.
    device : str
        ``auto``, ``cpu`` or ``cuda`` (``auto`` picks a GPU where the worker has one).
    chunk_rows : int
        Rows read, scored and written at once (one row group of the feature shard): the memory bound.
    threads : int
        Torch intra-op threads per process (0: :func:`mdaq.hardware.thread_plan`, all physical cores).
    ifd_model : str or None
        A causal LM folder (safetensors): also compute ``ifd``, ``loss_conditional`` and ``loss_unconditional``
        (:func:`mdaq.features.ifd.ifd_scores`).
    ifd_max_seq_len, ifd_batch_size : int
        Tokens per (prompt, response) sequence and sequences per forward pass (``ifd`` in ``params.yaml``).
    ifd_precision : str
        Of the causal LM's forward passes (``auto``, ``fp32``, ``bf16``).
    """

    qsm_dir: str | None = None
    encoder: str | None = None
    embed_max_len: int = 256
    batch_size: int = 32
    precision: str = "auto"
    device: str = "auto"
    chunk_rows: int = 4096
    threads: int = 0
    ifd_model: str | None = None
    ifd_max_seq_len: int = IFDConfig.max_seq_len
    ifd_batch_size: int = IFDConfig.batch_size
    ifd_precision: str = IFDConfig.precision

    def __post_init__(self) -> None:
        if (self.qsm_dir is None) != (self.encoder is None):
            raise ValueError("FeatureSpec: qsm_dir and encoder go together (the QSM score and the embedding)")
        if self.qsm_dir is None and self.ifd_model is None:
            raise ValueError("FeatureSpec: no features to compute (give qsm_dir and encoder, or ifd_model, or all)")

    @property
    def has_scores(self) -> bool:
        """Whether the QSM score and the embedding are computed."""
        return self.qsm_dir is not None

    def ifd_config(self) -> IFDConfig:
        """The IFD settings as the ``ifd`` stage takes them."""
        return IFDConfig(self.ifd_max_seq_len, self.ifd_batch_size, self.device, self.ifd_precision)


@dataclass(frozen=True)
class ShardTask:
    """One pool shard to featurize into ``out``."""

    path: str
    n_rows: int
    pool_sha256: str
    out: str
    fingerprint: str


def _folder_digest(folder: Path) -> str:
    """sha256 over the (name, sha256) of every file in a model folder, so any changed weight or setting shows."""
    if not folder.is_dir():
        raise DataError(folder, "no such model folder")
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        h.update(f"{path.relative_to(folder).as_posix()}\0{file_sha256(path)}\n".encode())
    return h.hexdigest()


def fingerprint(spec: FeatureSpec) -> str:
    """What makes two feature folders comparable: the QSM and encoder files, the embedding's token limit, prefix and
    requested precision; with IFD, the causal LM's files, its sequence length and requested precision (not the batch
    sizes, chunk size, threads or device, which change only rounding). A folder without IFD keeps the fingerprint it
    had before IFD could be computed, so such runs still resume."""
    parts: dict[str, Any] = {}
    if spec.has_scores:
        parts |= {
            "qsm": _folder_digest(Path(spec.qsm_dir)),
            "encoder": _folder_digest(Path(spec.encoder)),
            "embed_max_len": spec.embed_max_len,
            "embed_prefix": EMBED_PREFIX,
            "precision": spec.precision,
        }
    if spec.ifd_model is not None:
        parts["ifd"] = {
            "model": _folder_digest(Path(spec.ifd_model)),
            "max_seq_len": spec.ifd_max_seq_len,
            "precision": spec.ifd_precision,
        }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
