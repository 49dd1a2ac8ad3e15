"""k-means for pools of millions: trained with faiss on a seeded sample of the rows, then assigned block by block,
so no step holds more than one block of embeddings plus the sample and the centroids (issue 20, ``docs/scale.md``).

The sample is a *bottom-s* sample: every row gets a key from ``numpy.random.default_rng(random_state).random()``
drawn in pool order, and the sample is the ``s`` rows with the smallest ``(key, row)``. The keys do not depend on
how the rows are cut into blocks, so a streamed pass (:class:`RowSampler`) and an in-memory array
(:func:`sample_rows`) give the same sample; and the smallest ``s'`` keys of a bottom-``s`` sample are the bottom-``s'``
sample, so the sample can be gathered before ``k`` (which may depend on the pool size) is known.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

ENGINES = ("auto", "sklearn", "faiss")
# `engine="auto"` uses faiss from this many rows on. Below it scikit-learn's KMeans / MiniBatchKMeans (what every
# MIDB pool of ~2,300 rows has always used) keeps its results bit for bit; at 10^5 rows the faiss path is already
# several times faster (benchmarks/bench_scale_cluster.py) and its sample stops being the whole pool.
FAISS_MIN_ROWS = 100_000
NITER = 20  # Lloyd iterations (fixed: faiss has no tolerance stop); faiss's own default is 25
POINTS_PER_CLUSTER = 128  # training sample = k * this, capped; faiss subsamples to 256 per centroid by default
MAX_SAMPLE = 262_144  # at most 2^18 training rows: 384 MiB at d = 384 (float32); raise it for k > ~2,000
# Initial centroids. faiss's default ("random": k sample rows) often merges planted clusters; k-means++ seeding is
# exact but serial over k (46 s for 128,000 x 384 rows, k = 1,000, on 2 cores); AFK-MC2 approximates it by MCMC in
# ~2 s more than random there and recovers planted clusters about as well (tests/test_kmeans_scale.py).
INIT = "afk_mc2"
INITS = ("random", "kmeans++", "afk_mc2")


def resolve_engine(engine: str, n: int) -> str:
    """``"sklearn"`` or ``"faiss"``: the engine that clusters ``n`` rows.

    Parameters
    ----------
    engine : {"auto", "sklearn", "faiss"}
        ``"auto"``: faiss from :data:`FAISS_MIN_ROWS` rows on, scikit-learn below.
    n : int
        Number of rows to cluster.

    Raises
    ------
    ValueError
        An unknown engine.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        return "faiss" if n >= FAISS_MIN_ROWS else "sklearn"
    return engine


def sample_size(n: int, k: int, *, points_per_cluster: int = POINTS_PER_CLUSTER, max_sample: int = MAX_SAMPLE) -> int:
    """Training rows for k-means with ``k`` clusters on ``n`` rows: ``min(n, k * points_per_cluster, max_sample)``,
    but never fewer than ``k``.

    Raises
    ------
    ValueError
        ``k`` exceeds ``max_sample`` (and ``n``): every centroid needs a training row, so ``max_sample`` must grow.
    """
    if k > max_sample and n > max_sample:
        raise ValueError(f"k-means with {k} clusters needs at least {k} training rows; max_sample is {max_sample}")
    return int(min(n, max(k, min(k * points_per_cluster, max_sample))))


class RowSampler:
    """A seeded bottom-``capacity`` sample of rows fed block by block (pool order), in bounded memory.

    Holds at most ``capacity`` rows of embeddings (one preallocated buffer), their keys and row numbers. Once the
    buffer is full, :meth:`add` looks only at the block's rows whose key beats the largest kept key, and writes
    them over the rows they evict, so nothing of the size of the sample is copied per block.

    Parameters
    ----------
    capacity : int
        Most rows kept.
    random_state : int
        Seeds the row keys.
    """

    def __init__(self, capacity: int, random_state: int = 0):
        self.capacity = int(capacity)
        self.n_seen = 0
        self._rng = np.random.default_rng(random_state)
        self._keys = np.zeros(0, dtype=np.float64)  # per filled slot
        self._rows = np.zeros(0, dtype=np.int64)
        self._vecs: np.ndarray | None = None  # (capacity, d) float32, slots [0, len(_keys)) filled

    def add(self, embeddings: np.ndarray) -> None:
        """Offer the next ``len(embeddings)`` rows of the pool."""
        x = np.asarray(embeddings)
        if x.ndim != 2:
            raise ValueError(f"embeddings of rows {self.n_seen}.. have shape {x.shape}, expected (n, d)")
        if self._vecs is None:
            self._vecs = np.empty((self.capacity, x.shape[1]), dtype=np.float32)
        elif x.shape[1] != self._vecs.shape[1]:
            raise ValueError(
                f"embeddings of rows {self.n_seen}.. have {x.shape[1]} columns, earlier rows {self._vecs.shape[1]}"
            )
        keys = self._rng.random(len(x))  # one draw per row in pool order: independent of the block cut
        rows = np.arange(self.n_seen, self.n_seen + len(x), dtype=np.int64)
        self.n_seen += len(x)
        m = len(self._keys)
        if m == self.capacity:  # a later row never wins a tie (same key, larger row)
            new = np.flatnonzero(keys < self._keys.max()) if m else np.zeros(0, dtype=np.int64)
        else:
            new = np.arange(len(x))
        if len(new) == 0:
            return
        keep = _smallest(
            np.concatenate([self._keys, keys[new]]), np.concatenate([self._rows, rows[new]]), self.capacity
        )
        is_kept = np.zeros(m + len(new), dtype=bool)
        is_kept[keep] = True
        fresh = new[np.flatnonzero(is_kept[m:])]
        slots = np.concatenate([np.flatnonzero(~is_kept[:m]), np.arange(m, len(keep))])  # evicted, then free
        self._keys = np.concatenate([self._keys, np.zeros(len(keep) - m)])
        self._rows = np.concatenate([self._rows, np.zeros(len(keep) - m, dtype=np.int64)])
        self._keys[slots], self._rows[slots] = keys[fresh], rows[fresh]
        self._vecs[slots] = x[fresh]

    def take(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The bottom-``size`` sample (``size <= capacity``): its row numbers and embeddings, in row order."""
        if size > self.capacity:
            raise ValueError(f"asked for {size} sample rows, the sampler keeps {self.capacity}")
        slots = _smallest(self._keys, self._rows, size)
        slots = slots[np.argsort(self._rows[slots])]
        vecs = self._vecs if self._vecs is not None else np.zeros((0, 0), dtype=np.float32)
        return self._rows[slots], vecs[slots]


def _smallest(keys: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    """Positions of the ``size`` smallest ``(key, row)`` pairs (rows unique), in no particular order; O(n)."""
    if len(keys) <= size:
        return np.arange(len(keys))
    if size == 0:
        return np.zeros(0, dtype=np.int64)
    cut = np.partition(keys, size - 1)[size - 1]
    below = np.flatnonzero(keys < cut)
    tied = np.flatnonzero(keys == cut)
    tied = tied[np.argsort(rows[tied])][: size - len(below)]
    return np.concatenate([below, tied])


def sample_rows(n: int, size: int, random_state: int = 0) -> np.ndarray:
    """Row numbers (ascending) of the bottom-``size`` sample of ``n`` rows: what :class:`RowSampler` keeps."""
    keys = np.random.default_rng(random_state).random(n)
    return np.sort(_smallest(keys, np.arange(n), size))


def train_centroids(
    sample: np.ndarray,
    k: int,
    *,
    random_state: int = 0,
    niter: int = NITER,
    spherical: bool = False,
    init: str = INIT,
) -> np.ndarray:
    """faiss k-means on ``sample``: ``(k, d)`` float32 centroids, deterministic for a seed and thread count.

    Parameters
    ----------
    sample : (s, d) array
        Training rows (``s >= k``); all of them are used (faiss's own subsampling is turned off).
    k : int
        Number of clusters.
    random_state : int
        faiss's seed (it picks the ``k`` initial centroids among the rows).
    niter : int
        Lloyd iterations.
    spherical : bool
        Normalise the centroids after every iteration and assign by inner product (for unit-norm embeddings and
        cosine geometry); False keeps scikit-learn's Euclidean objective.
    init : {"afk_mc2", "random", "kmeans++"}
        How the initial centroids are drawn (:data:`INIT`).
    """
    import faiss

    x = np.ascontiguousarray(sample, dtype=np.float32)
    s, d = x.shape
    if not 1 <= k <= s:
        raise ValueError(f"k-means with {k} clusters on {s} training rows: need 1 <= k <= rows")
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    init_method = {
        "random": faiss.ClusteringInitMethod_RANDOM,
        "kmeans++": faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS,
        "afk_mc2": faiss.ClusteringInitMethod_AFK_MC2,
    }[init]
    km = faiss.Kmeans(
        d,
        int(k),
        niter=int(niter),
        seed=int(random_state),
        spherical=bool(spherical),
        init_method=init_method,
        max_points_per_centroid=math.ceil(s / k) + 1,  # the sample is already drawn: train on all of it
        min_points_per_centroid=1,  # few rows per centroid is the caller's choice; faiss would only warn
        verbose=False,
    )
    km.train(x)
    return np.asarray(km.centroids, dtype=np.float32)


class CentroidAssigner:
    """Nearest-centroid labels, one block at a time (a faiss flat index over the centroids)."""

    def __init__(self, centroids: np.ndarray, *, spherical: bool = False):
        import faiss

        c = np.ascontiguousarray(centroids, dtype=np.float32)
        self.index = faiss.IndexFlatIP(c.shape[1]) if spherical else faiss.IndexFlatL2(c.shape[1])
        self.index.add(c)

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """int64 label of every row of ``embeddings``."""
        x = np.ascontiguousarray(embeddings, dtype=np.float32)
        if len(x) == 0:
            return np.zeros(0, dtype=np.int64)
        return self.index.search(x, 1)[1][:, 0].astype(np.int64)


def assign_blocks(blocks: Iterable[np.ndarray], centroids: np.ndarray, *, spherical: bool = False) -> np.ndarray:
    """Labels of all rows of ``blocks`` (embedding arrays, pool order), holding one block at a time."""
    assign = CentroidAssigner(centroids, spherical=spherical)
    parts = [assign(x).astype(np.int32) for x in blocks]  # int32: 4 bytes a row for the whole pool
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class KMeansSettings:
    """How faiss k-means is trained (the defaults are what ``engine="faiss"`` uses in every selector).

    Attributes
    ----------
    niter : int
        Lloyd iterations (:data:`NITER`).
    points_per_cluster, max_sample : int
        Training sample size (:func:`sample_size`).
    spherical : bool
        Unit-norm centroids, assignment by inner product.
    init : str
        Initial centroids (:data:`INIT`).
    """

    niter: int = NITER
    points_per_cluster: int = POINTS_PER_CLUSTER
    max_sample: int = MAX_SAMPLE
    spherical: bool = False
    init: str = INIT

    def sample_size(self, n: int, k: int) -> int:
        """:func:`sample_size` with these settings."""
        return sample_size(n, k, points_per_cluster=self.points_per_cluster, max_sample=self.max_sample)

    def train(self, sample: np.ndarray, k: int, random_state: int) -> np.ndarray:
        """:func:`train_centroids` with these settings."""
        return train_centroids(
            sample, k, random_state=random_state, niter=self.niter, spherical=self.spherical, init=self.init
        )


DEFAULT_SETTINGS = KMeansSettings()


def kmeans_labels(
    embeddings: np.ndarray, n_clusters: int, *, random_state: int = 0, settings: KMeansSettings = DEFAULT_SETTINGS
) -> np.ndarray:
    """faiss k-means labels of an in-memory array: trained on the bottom-s sample (:func:`sample_size`), then all
    rows assigned. Equal to :func:`stream_kmeans` over the same rows cut into any blocks (up to rows equidistant
    from two centroids within float32 rounding).

    Returns
    -------
    numpy.ndarray of int64
        One label in ``[0, k)`` per row, ``k = min(n_clusters, n)``.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = int(min(max(1, n_clusters), n))
    rows = sample_rows(n, settings.sample_size(n, k), random_state)
    centroids = settings.train(x[rows], k, random_state)
    return assign_blocks([x], centroids, spherical=settings.spherical)


def stream_kmeans(
    blocks, n_clusters: int, *, random_state: int = 0, settings: KMeansSettings = DEFAULT_SETTINGS
) -> np.ndarray:
    """faiss k-means labels of a pool given as a block factory, in two passes and bounded memory.

    Parameters
    ----------
    blocks : callable
        ``blocks()`` returns a fresh iterator over the pool's blocks (objects with an ``embeddings`` array, e.g.
        :class:`mdaq.shards.features.FeatureBlock`), in pool order; it is called twice (sample, then assign).
    n_clusters : int
        k (clipped to the pool size).
    random_state : int
        Seeds the sample and faiss.
    settings : KMeansSettings
        Training settings.

    Returns
    -------
    numpy.ndarray of int64
        One label per pool row.
    """
    capacity = max(int(n_clusters), min(n_clusters * settings.points_per_cluster, settings.max_sample))
    sampler = sample_blocks(blocks, capacity, random_state)
    n = sampler.n_seen
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = int(min(max(1, n_clusters), n))
    _, sample = sampler.take(settings.sample_size(n, k))
    centroids = settings.train(sample, k, random_state)
    labels = assign_blocks((b.embeddings for b in blocks()), centroids, spherical=settings.spherical)
    if len(labels) != n:
        raise ValueError(f"the block factory gave {n} rows in the first pass and {len(labels)} in the second")
    return labels


def sample_blocks(blocks, capacity: int, random_state: int = 0) -> RowSampler:
    """One pass of ``blocks()`` into a :class:`RowSampler` (no block outlives its step)."""
    sampler = RowSampler(capacity, random_state)
    for block in blocks():
        sampler.add(block.embeddings)
    return sampler
