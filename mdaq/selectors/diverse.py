"""Diversity-driven selectors: k-means representatives, greedy k-center, exact MMR, CaR."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mdaq.selectors.algorithms import cluster_labels, default_n_clusters, kcenter_greedy, mmr_select
from mdaq.selectors.base import SELECTORS, BaseSelector
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

    def __init__(self, *, random_state: int = 0):
        self.random_state = random_state

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        if budget == 0:
            return np.zeros(0, dtype=np.int64)
        x = np.asarray(pool.embeddings, dtype=np.float32)
        labels = cluster_labels(x, budget, random_state=self.random_state)
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
    ``car`` against ``mdaq_das`` compares the two papers' scorers as well as their selection rules.

    References
    ----------
    Ge et al., "Clustering and Ranking: Diversity-preserved Instruction Selection through Expert-aligned Quality
    Estimation", EMNLP 2024 (arXiv 2402.18191).
    """

    name = "car"
    version = "2"
    requires = frozenset({"quality", "embeddings"})
    scorer = "regression"  # CaR's own IQS scorer (one text -> score, MSE on revised 1 / raw 0), not M-DaQ's QSM

    def __init__(self, *, n_clusters: int = 0, n_per_cluster: int = 1, random_state: int = 0):
        self.n_clusters = n_clusters
        self.n_per_cluster = n_per_cluster
        self.random_state = random_state

    def _param_problems(self) -> Iterator[tuple[str, str]]:
        if self.n_clusters < 0:
            yield "n_clusters", f"{self.n_clusters} is negative (0 = CaR's floor(sqrt(n / 2)))"
        if self.n_per_cluster < 1:
            yield "n_per_cluster", f"{self.n_per_cluster} is not a positive number of samples per cluster"

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        n = len(pool)
        labels = cluster_labels(
            pool.embeddings, self.n_clusters or default_n_clusters(n), random_state=self.random_state
        )
        order = np.lexsort((np.arange(n), -np.asarray(pool.quality)))
        rank_in_cluster = np.zeros(n, dtype=np.int64)
        seen: dict[int, int] = {}
        for i in order:
            rank_in_cluster[i] = seen.get(int(labels[i]), 0)
            seen[int(labels[i])] = rank_in_cluster[i] + 1
        reps = order[rank_in_cluster[order] < self.n_per_cluster][:budget]
        taken = np.zeros(n, dtype=bool)
        taken[reps] = True
        return np.concatenate([reps, order[~taken[order]][: budget - len(reps)]]).astype(np.int64)
