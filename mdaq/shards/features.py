"""Features of a sharded pool, as blocks: the contract between the code that computes features at scale (in-process or
on Ray Data) and the code that clusters and selects from them in a streaming pass (issue 20, ``docs/scale.md``).

A feature shard folder mirrors its pool's shards: ``<features>/<pool shard stem>.parquet`` holds, for every row of that
pool shard and in its order, the columns of :data:`FEATURE_COLUMNS`, plus a ``_manifest.json``. Readers yield
:class:`FeatureBlock` objects; a consumer that needs several passes (k-means on a sample, then assignment, then
selection) takes a *factory* ``Callable[[], Iterator[FeatureBlock]]`` and calls it once per pass, so no pass holds
more than one block of embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

FEATURE_COLUMNS = ("id", "quality", "embedding")  # string; float32 (QSM score); fixed-size list<float32>[dim]


@dataclass(frozen=True)
class FeatureBlock:
    """Consecutive rows of a pool's features.

    Attributes
    ----------
    ids : np.ndarray
        ``(n,)`` sample ids (``str``), unique across the pool.
    quality : np.ndarray
        ``(n,)`` float32 QSM scores (higher is better).
    embeddings : np.ndarray
        ``(n, dim)`` float32 diversity embeddings.
    """

    ids: np.ndarray
    quality: np.ndarray
    embeddings: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.quality.shape != (n,) or self.embeddings.ndim != 2 or self.embeddings.shape[0] != n:
            raise ValueError(
                f"feature block: {n} ids but quality {self.quality.shape} and embeddings {self.embeddings.shape}"
            )

    def __len__(self) -> int:
        return len(self.ids)


BlockFactory = Callable[[], Iterator[FeatureBlock]]  # one call per pass over the pool
