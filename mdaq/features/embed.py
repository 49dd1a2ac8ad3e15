"""Sentence embedders for diversity features: a real mean-pooling encoder and a hashing test double."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class SentenceEmbedder:
    """Mean-pooled, L2-normalised embeddings from a local encoder folder (what sentence-transformers computes
    for multilingual-e5, without needing its module layout, so tiny test encoders work too).

    Parameters
    ----------
    path : path
        Encoder folder (safetensors).
    prefix : str
        Prepended to every text (E5: ``"passage: "``).
    max_len, batch_size : int
        Truncation and batch size; batches are sorted by length.
    precision : {"auto", "fp32", "bf16"}
        Matmul precision (:func:`mdaq.models.lm.autocast`; ``auto``: :func:`mdaq.hardware.resolve_precision`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        prefix: str = "passage: ",
        max_len: int = 256,
        batch_size: int = 32,
        device: str = "auto",
        precision: str = "auto",
    ):
        from mdaq.quality.model import QualityModel

        self.path, self.prefix, self.batch_size = Path(path), prefix, batch_size
        self.name = f"mean-pool:{self.path.name}"
        self._model = QualityModel(
            path, max_len=max_len, device=device, query_prefix="", passage_prefix="", precision=precision
        )
        self.dim = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 unit rows, in input order."""
        m = self._model.load_encoder()
        m.model_.eval()
        self.dim = m.model_.config.hidden_size
        out = m.embed_texts([self.prefix + t for t in texts], self.batch_size, progress=len(texts) > 1000)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class HashingEmbedder:
    """Deterministic bag-of-character-trigram hashing embedder (test double; no model, no torch)."""

    def __init__(self, dim: int = 64):
        self.dim, self.name = dim, f"hashing-{dim}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 unit rows."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for j in range(max(1, len(text) - 2)):
                h = int.from_bytes(hashlib.md5(text[j : j + 3].encode()).digest()[:4], "little")
                out[row, h % self.dim] += 1.0 if h & 1 << 31 else -1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def sample_text(instruction: str, input: str, output: str) -> str:
    """What diversity embeddings see: instruction, input and response (CaR clusters the whole sample)."""
    return "\n".join(t for t in (instruction, input, output) if t)
