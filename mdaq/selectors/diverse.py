"""Diversity-driven selectors: k-means representatives, greedy k-center, exact MMR, CaR."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mdaq.selectors.algorithms import car_select, cluster_labels, default_n_clusters, kcenter_greedy, mmr_select
from mdaq.selectors.base import SELECTORS, BaseSelector
from mdaq.selectors.kmeans_scale import ENGINES
from mdaq.types import Pool


@SELECTORS.register("kmeans_diverse")
class KMeansDiverseSelector(BaseSelector):
    """Diversity only: k-means with k = budget, then the sample nearest each centroid (largest clusters first).

    References
    ----------
    The clustering step of CaR (Ge et al., EMNLP 2024, arXiv 2402.18191) without its quality ranking.
    """

    name = "kmeans_diverse"
    version = "1"
    requires = frozenset({"embeddings"})

    def __init__(self, *, engine: str = "auto", random_state: int = 0):
        self.engine = engine
        self.random_state = random_state

    def _param_problems(self) -> Iterator[tuple[str, str]]:
        yield from _engine_problems(self.engine)

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        if budget == 0:
            return np.zeros(0, dtype=np.int64)
        x = np.asarray(pool.embeddings, dtype=np.float32)
        labels = cluster_labels(x, budget, random_state=self.random_state, engine=self.engine)
        reps, sizes = [], []
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            centroid = x[members].mean(0)
            reps.append(members[np.argmin(((x[members] - centroid) ** 2).sum(1))])
            sizes.append(len(members))
        picked = np.asarray(reps)[np.lexsort((reps, -np.asarray(sizes)))]
        if len(picked) < budget:  # duplicate rows can yield fewer distinct clusters than asked
            rest = np.setdiff1d(np.arange(len(pool)), picked)
            picked = np.concatenate([picked, rest[: budget - len(picked)]])
        return picked


@SELECTORS.register("kcenter")
class KCenterSelector(BaseSelector):
    """Greedy k-center coreset (farthest-first traversal), starting from a seeded random sample.

    References
    ----------
    Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set Approach", ICLR 2018.
    """

    name = "kcenter"
    version = "1"
    requires = frozenset({"embeddings"})

    def __init__(self, *, random_state: int = 0):
        self.random_state = random_state

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        first = int(np.random.default_rng(self.random_state).integers(len(pool))) if len(pool) else 0
        return kcenter_greedy(pool.embeddings, budget, first=first)


@SELECTORS.register("mmr")
class MMRSelector(BaseSelector):
    """Exact greedy Maximal Marginal Relevance over QSM quality and cosine similarity, trade-off ``lam``.

    References
    ----------
    Carbonell & Goldstein, "The Use of MMR, Diversity-Based Reranking for Reordering Documents and Producing
    Summaries", SIGIR 1998; the inspiration of M-DaQ's DAS (arXiv 2509.15549).
    """

    name = "mmr"
    version = "1"
    requires = frozenset({"quality", "embeddings"})

    def __init__(self, *, lam: float = 0.7, random_state: int = 0):
        self.lam = lam
        self.random_state = random_state

    def _param_problems(self) -> Iterator[tuple[str, str]]:
        if not 0 <= self.lam <= 1:
            yield "lam", f"{self.lam} is not in [0, 1] (the weight of quality against similarity)"

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        return mmr_select(pool.quality, pool.embeddings, budget, lam=self.lam)


@SELECTORS.register("car")
class CaRSelector(BaseSelector):
    """CaR: the best ``n_per_cluster`` samples (by quality) of every k-means cluster, plus the top by quality.

    With a fixed budget: the per-cluster representatives (k · n_per_cluster, at most the budget) come first,
    ordered by quality; the remaining slots go to the best not-yet-selected samples by quality (CaR's
    "top n1 ∪ per-cluster top n2, deduplicated"). In the pipeline ``Pool.quality`` holds CaR's own scorer's scores
    (``scorer = "regression"``: the ``car_scorer`` stage trains it on the same expert revision pairs as the QSM), so
    ``car`` against ``mdaq_das`` compares the two papers' scorers as well as their selection rules. ``engine``
    picks the k-means implementation (:func:`mdaq.selectors.algorithms.cluster_labels`: ``"auto"`` keeps
    scikit-learn for pools below 100,000 rows and uses faiss above).

    References
    ----------
    Ge et al., "Clustering and Ranking: Diversity-preserved Instruction Selection through Expert-aligned Quality
    Estimation", EMNLP 2024 (arXiv 2402.18191).
    """

    name = "car"
    version = "2"
    requires = frozenset({"quality", "embeddings"})
    scorer = "regression"  # CaR's own IQS scorer (one text -> score, MSE on revised 1 / raw 0), not M-DaQ's QSM

    def __init__(self, *, n_clusters: int = 0, n_per_cluster: int = 1, engine: str = "auto", random_state: int = 0):
        self.n_clusters = n_clusters
        self.n_per_cluster = n_per_cluster
        self.engine = engine
        self.random_state = random_state

    def _param_problems(self) -> Iterator[tuple[str, str]]:
        if self.n_clusters < 0:
            yield "n_clusters", f"{self.n_clusters} is negative (0 = CaR's floor(sqrt(n / 2)))"
        if self.n_per_cluster < 1:
            yield "n_per_cluster", f"{self.n_per_cluster} is not a positive number of samples per cluster"
        yield from _engine_problems(self.engine)

    def cluster_count(self, n: int, budget: int) -> int:
        """k for a pool of ``n`` samples: ``n_clusters``, or CaR's floor(sqrt(n / 2)) when it is 0."""
        return self.n_clusters or default_n_clusters(n)

    def select_clustered(
        self, quality: np.ndarray, labels: np.ndarray, budget: int, *, n_clusters: int, lang: str = ""
    ) -> np.ndarray:
        """The selection given the pool's cluster labels: what :meth:`select` does after k-means; the streamed path
        (:mod:`mdaq.selectors.streamed`) calls it with labels from a pass over feature blocks. ``n_clusters`` and
        ``lang`` are unused (the signature is shared with ``mdaq_das``)."""
        return car_select(quality, labels, budget, self.n_per_cluster)

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        k = self.cluster_count(len(pool), budget)
        labels = cluster_labels(pool.embeddings, k, random_state=self.random_state, engine=self.engine)
        return self.select_clustered(pool.quality, labels, budget, n_clusters=k, lang=pool.lang)


def _engine_problems(engine: object) -> Iterator[tuple[str, str]]:
    """The ``engine`` parameter's problem, if any (shared by the k-means selectors)."""
    if engine not in ENGINES:
        yield "engine", f"{engine!r} is not a k-means engine ({', '.join(ENGINES)}; auto = faiss for large pools)"
