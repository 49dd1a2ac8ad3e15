"""Baseline selectors: uniform random and the full pool (the paper's "vanilla" model)."""

from __future__ import annotations

import numpy as np

from mdaq.selectors.base import SELECTORS, BaseSelector
from mdaq.types import Pool


@SELECTORS.register("random")
class RandomSelector(BaseSelector):
    """Uniform random subset without replacement (seeded by ``random_state``).

    The reference point every selector must beat; on the MIDB mixed pool its share of expert-revised samples is
    about ``prepare.p_revised``.
    """

    name = "random"
    version = "1"

    def __init__(self, *, random_state: int = 0):
        self.random_state = random_state

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        rng = np.random.default_rng(self.random_state)
        return rng.permutation(len(pool))[:budget]


@SELECTORS.register("full")
class FullSelector(BaseSelector):
    """Every sample, in pool order: the "vanilla" baseline of M-DaQ (fine-tune on the unfiltered pool).

    Ignores the budget (``uses_budget = False``).

    References
    ----------
    Zhao et al., "M-DaQ: Retrieving Samples with Multilingual Diversity and Quality for Instruction Fine-Tuning
    Datasets", SIGIR 2026 (arXiv 2509.15549), vanilla baseline.
    """

    name = "full"
    version = "1"
    uses_budget = False
    role = "reference"

    def __init__(self, *, random_state: int = 0):
        self.random_state = random_state

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        return np.arange(len(pool))
