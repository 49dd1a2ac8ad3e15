"""Single-signal selectors: longest response, top QSM score."""

from __future__ import annotations

import numpy as np

from mdaq.selectors.base import SELECTORS, BaseSelector
from mdaq.types import Pool


@SELECTORS.register("longest")
class LongestSelector(BaseSelector):
    """The longest responses first (ties by pool order).

    References
    ----------
    Zhao et al., "Long Is More for Alignment: A Simple but Tough-to-Beat Baseline for Instruction Fine-Tuning",
    ICML 2024 (arXiv 2402.04833).
    """

    name = "longest"
    version = "1"

    def __init__(self, *, random_state: int = 0):
        self.random_state = random_state

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        lengths = np.array([len(s.output) for s in pool.samples])
        return np.lexsort((np.arange(len(pool)), -lengths))[:budget]


@SELECTORS.register("quality_topk")
class QualityTopKSelector(BaseSelector):
    """The highest QSM scores first: M-DaQ's quality stage alone (DAS with n_diversity = 0).

    References
    ----------
    Zhao et al., "M-DaQ", SIGIR 2026 (arXiv 2509.15549), §3.1 (QSM).
    """

    name = "quality_topk"
    version = "1"
    requires = frozenset({"quality"})

    def __init__(self, *, random_state: int = 0):
        self.random_state = random_state

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        return np.lexsort((np.arange(len(pool)), -np.asarray(pool.quality)))[:budget]
