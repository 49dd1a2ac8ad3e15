"""M-DaQ's Diversity-Aware Selection (Algorithm 1)."""

from __future__ import annotations

import numpy as np

from mdaq.selectors.algorithms import cluster_labels, das_select, default_n_clusters, split_budget
from mdaq.selectors.base import SELECTORS, BaseSelector
from mdaq.types import Pool


@SELECTORS.register("mdaq_das")
class MdaqSelector(BaseSelector):
    """M-DaQ: top ``n_quality`` by QSM score, then one sample from each not-yet-covered embedding cluster.

    The budget is split ``n_quality : n_diversity = n_quality_ratio : n_diversity_ratio`` (paper: 6 : 1). The pool
    embeddings are clustered with k-means into ``n_clusters`` (0 = CaR's floor(sqrt(n / 2)); the paper's k is not
    published); the scan then adds, in descending quality order, the best sample of every cluster the quality part
    did not cover. When uncovered clusters run out, the remaining slots are filled by quality (Algorithm 1 itself
    would return fewer samples).

    References
    ----------
    Zhao et al., "M-DaQ: Retrieving Samples with Multilingual Diversity and Quality for Instruction Fine-Tuning
    Datasets", SIGIR 2026 (arXiv 2509.15549), Algorithm 1.
    """

    name = "mdaq_das"
    version = "1"
    requires = frozenset({"quality", "embeddings"})

    def __init__(
        self, *, n_quality_ratio: float = 6, n_diversity_ratio: float = 1, n_clusters: int = 0, random_state: int = 0
    ):
        self.n_quality_ratio = n_quality_ratio
        self.n_diversity_ratio = n_diversity_ratio
        self.n_clusters = n_clusters
        self.random_state = random_state

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        k = self.n_clusters or default_n_clusters(len(pool))
        labels = cluster_labels(pool.embeddings, k, random_state=self.random_state)
        n_q, n_d = split_budget(budget, self.n_quality_ratio, self.n_diversity_ratio)
        return das_select(pool.quality, labels, n_q, n_d, fill=True)
