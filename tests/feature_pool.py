"""Helpers shared by the feature-shard tests: a small multilingual sharded pool and a tiny saved QSM."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdaq.shards import write_shards
from mdaq.types import Sample

TOPICS = ["Nenne eine Farbe", "色を一つ挙げて", "Hva er 2+2", "Übersetze 'Haus'", "Erkläre Photosynthese"]


def pool_samples(n: int, *, width: int = 1, langs: tuple[str, ...] = ("de", "ja", "no")) -> list[Sample]:
    """``n`` distinct samples of varied lengths (so length-sorted batches reorder rows), in ``langs`` by turns."""
    return [
        Sample.create(
            langs[i % len(langs)],
            f"{TOPICS[i % len(TOPICS)]} ({i})",
            "Kontext" if i % 4 == 0 else "",
            f"Antwort {i} " * (1 + (i * 7) % 11) * width,
            source="test",
            meta={"k": i},
        )
        for i in range(n)
    ]


def write_pool(
    folder: Path, n: int, rows_per_shard: int, *, width: int = 1, langs: tuple[str, ...] = ("de", "ja", "no")
) -> Path:
    """A sharded pool of :func:`pool_samples` (``mdaq data shard``'s writer)."""
    write_shards(pool_samples(n, width=width, langs=langs), folder, rows_per_shard=rows_per_shard)
    return folder


def save_tiny_qsm(encoder: Path, out: Path) -> Path:
    """An untrained triplet QSM over the tiny random BERT, saved in fp32 (so ``auto`` never picks bf16 in a
    worker process, which the test's bf16 probe does not reach); it also serves as the diversity encoder."""
    from mdaq.quality.model import QualityModel

    QualityModel(encoder, max_len=32, precision="fp32").load_encoder().save(out)
    return out


def read_all(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, quality, embeddings) of a whole feature folder."""
    from mdaq.shards.features import iter_feature_shards

    blocks = list(iter_feature_shards(folder))
    return (
        np.concatenate([b.ids for b in blocks]),
        np.concatenate([b.quality for b in blocks]),
        np.concatenate([b.embeddings for b in blocks]),
    )


def kill_on_third_shard(monkeypatch, out: Path) -> list:
    """Make :meth:`ShardFeaturizer.featurize` die on its third shard as a killed run does (a half-written temporary
    file left in ``out``, then ``KeyboardInterrupt``), after computing the first two for real; ``monkeypatch.undo()``
    restores it. Returns the list of tasks it was called with."""
    from mdaq.features.engine import ShardFeaturizer

    real, calls = ShardFeaturizer.featurize, []

    def dies_on_third(self, task):
        calls.append(task)
        if len(calls) == 3:
            (out / ".part-00002.parquet.abc.tmp").write_bytes(b"half a shard")  # as a kill leaves it
            raise KeyboardInterrupt
        return real(self, task)

    monkeypatch.setattr(ShardFeaturizer, "featurize", dies_on_third)
    return calls
