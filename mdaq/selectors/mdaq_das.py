"""M-DaQ's Diversity-Aware Selection (Algorithm 1)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from mdaq.selectors.algorithms import cluster_labels, das_n_clusters, das_select, split_budget
from mdaq.selectors.base import SELECTORS, BaseSelector
from mdaq.selectors.kmeans_scale import ENGINES
from mdaq.types import Pool

logger = logging.getLogger(__name__)


@SELECTORS.register("mdaq_das")
class MdaqSelector(BaseSelector):
    """M-DaQ: top ``n_quality`` by QSM score, then one sample from each not-yet-covered embedding cluster.

    The budget is split ``n_quality : n_diversity = n_quality_ratio : n_diversity_ratio`` (paper: 6 : 1). The pool
    embeddings are clustered with k-means into k clusters; the scan then adds, in descending quality order, the
    best sample of every cluster the quality part did not cover. When uncovered clusters run out, the remaining
    slots are filled by quality (Algorithm 1 itself would return fewer samples).

    **Choice of k** (the paper does not publish it; :func:`mdaq.selectors.algorithms.das_n_clusters`):
    ``n_clusters="budget"`` (default) sets k = n_quality + n_diversity. The quality part touches at most
    n_quality clusters and k-means leaves none empty (given k distinct points), so at least n_diversity clusters
    stay uncovered and every requested diversity pick is made. CaR's k = floor(sqrt(n / 2))
    (``n_clusters="sqrt"``) is too coarse at a 6 : 1 split: at pool 80 / budget 20 (k = 6) or pool 794 / budget
    112 (k = 19) the 17 or 96 quality picks typically cover every cluster, stage 2 makes 0 or 1 of its 3 or 16
    picks and the selection is (nearly) ``quality_topk``. An int is used as k (0 is refused: it meant ``"sqrt"``
    before version 2). With very large budgets k-means with k = budget is costly; pass an int then.

    Parameters
    ----------
    n_quality_ratio, n_diversity_ratio : float
        The budget split (paper: 6 : 1).
    n_clusters : int or {"budget", "sqrt"}
        k, or the rule that gives it (see above).
    engine : {"auto", "sklearn", "faiss"}
        The k-means implementation (:func:`mdaq.selectors.algorithms.cluster_labels`): ``"auto"`` keeps
        scikit-learn below :data:`mdaq.selectors.kmeans_scale.FAISS_MIN_ROWS` rows (every MIDB pool) and uses faiss,
        trained on a seeded sample, from there on.
    random_state : int
        Seeds k-means.

    Attributes
    ----------
    parts_ : dict
        After :meth:`select`: ``n_clusters`` (k given to k-means), ``n_quality``, ``n_diversity_requested``,
        ``n_diversity_made`` and ``n_fill`` (the slots stage 2 could not fill, given to the next best by quality).
    part_labels_ : numpy.ndarray of str
        After :meth:`select`: per returned index, in order, ``"quality"``, ``"diversity"`` or ``"fill"``.

    References
    ----------
    Zhao et al., "M-DaQ: Retrieving Samples with Multilingual Diversity and Quality for Instruction Fine-Tuning
    Datasets", SIGIR 2026 (arXiv 2509.15549), Algorithm 1.
    """

    name = "mdaq_das"
    version = "2"  # 2: default k = budget (was CaR's floor(sqrt(n / 2))); picks labelled by part
    requires = frozenset({"quality", "embeddings"})

    def __init__(
        self,
        *,
        n_quality_ratio: float = 6,
        n_diversity_ratio: float = 1,
        n_clusters: int | str = "budget",
        engine: str = "auto",
        random_state: int = 0,
    ):
        self.n_quality_ratio = n_quality_ratio
        self.n_diversity_ratio = n_diversity_ratio
        self.n_clusters = n_clusters
        self.engine = engine
        self.random_state = random_state

    def _param_problems(self) -> Iterator[tuple[str, str]]:
        try:
            split_budget(1, self.n_quality_ratio, self.n_diversity_ratio)
        except ValueError as e:
            yield "n_quality_ratio", str(e)
        try:
            das_n_clusters(self.n_clusters, 1, 1)
        except ValueError as e:
            yield "n_clusters", str(e)
        if self.engine not in ENGINES:
            yield "engine", f"{self.engine!r} is not a k-means engine ({', '.join(ENGINES)})"

    def cluster_count(self, n: int, budget: int) -> int:
        """k for a pool of ``n`` samples and ``budget`` picks (:func:`das_n_clusters`)."""
        return das_n_clusters(self.n_clusters, n, budget)

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        k = self.cluster_count(len(pool), budget)  # the values were checked by select()
        labels = cluster_labels(pool.embeddings, k, random_state=self.random_state, engine=self.engine)
        return self.select_clustered(pool.quality, labels, budget, n_clusters=k, lang=pool.lang)

    def select_clustered(
        self, quality: np.ndarray, labels: np.ndarray, budget: int, *, n_clusters: int, lang: str = ""
    ) -> np.ndarray:
        """Algorithm 1 given the pool's cluster labels; sets ``parts_`` and ``part_labels_``.

        What :meth:`select` does after k-means; the streamed path (:mod:`mdaq.selectors.streamed`) calls it with
        labels from a pass over feature blocks. ``n_clusters`` (the k given to k-means) is recorded in ``parts_``;
        ``lang`` names the pool in the log line.
        """
        n_q, n_d = split_budget(budget, self.n_quality_ratio, self.n_diversity_ratio)
        idx, parts = das_select(quality, labels, n_q, n_d, fill=True, return_parts=True)
        made, n_fill = int(np.sum(parts == "diversity")), int(np.sum(parts == "fill"))
        self.part_labels_ = parts
        self.parts_ = {
            "n_clusters": n_clusters,
            "n_quality": int(np.sum(parts == "quality")),
            "n_diversity_requested": n_d,
            "n_diversity_made": made,
            "n_fill": n_fill,
        }
        log = logger.warning if made < n_d else logger.info
        log("mdaq_das on %r: %s", lang, ", ".join(f"{key} {v}" for key, v in self.parts_.items()))
        return idx
