"""The selector contract: scikit-learn manners, declared features, validated output."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from mdaq.registry import Registry
from mdaq.types import Pool

SELECTORS: Registry[type[BaseSelector]] = Registry("selector")
FEATURES = frozenset({"quality", "embeddings", "ifd"})  # Pool fields a selector may declare in `requires`
SCORERS = ("qsm", "regression")  # BaseSelector.scorer: the quality scorer behind Pool.quality


class BaseSelector(BaseEstimator):
    """Base class of every selection method.

    Subclasses set ``name``, ``version`` and ``requires`` (a subset of :data:`FEATURES`: QSM ``quality`` scores,
    diversity ``embeddings``, ``ifd`` scores from a causal LM), store their
    hyperparameters unchanged in a keyword-only ``__init__`` (always including ``random_state``), and implement
    ``_select(pool, budget)``. Selection is stateless per pool: anything learned arrives through ``Pool.quality``.
    ``role`` places the method's row on the leaderboard: ``"method"`` (ranked), ``"reference"`` (the full pool,
    what every method is compared against) or ``"control"`` (reads the evaluation label; shows whether the metric
    separates good from bad data, never ranked). ``scorer`` names the quality scorer whose scores the pipeline puts
    in ``Pool.quality`` for this method: ``"qsm"`` (M-DaQ's triplet QSM, stage ``qsm``) or ``"regression"`` (CaR's
    single-text regression scorer, stage ``car_scorer``), so each paper's method ranks with its own scorer.
    """

    name: ClassVar[str] = "base"
    version: ClassVar[str] = "0"
    requires: ClassVar[frozenset[str]] = frozenset()
    uses_budget: ClassVar[bool] = True
    role: ClassVar[str] = "method"  # "reference" (full), "control" (reads the evaluation label), or "method"
    scorer: ClassVar[str] = "qsm"  # which scorer fills Pool.quality: "qsm" (M-DaQ's) or "regression" (CaR's own)

    def select(self, pool: Pool, budget: int) -> np.ndarray:
        """Indices into ``pool.samples`` in priority order.

        Parameters
        ----------
        pool : Pool
            Candidates plus the features this selector declares in ``requires``.
        budget : int
            Number of samples wanted (>= 0); selectors with ``uses_budget = False`` (``full``) ignore it.

        Returns
        -------
        numpy.ndarray of int64
            Unique indices, ``min(budget, len(pool))`` of them (all of them when ``uses_budget`` is False).

        Raises
        ------
        ValueError
            Negative budget, a required feature missing from the pool, or an invalid result from ``_select``.
        """
        if not isinstance(budget, int | np.integer) or budget < 0:
            raise ValueError(f"{self.name}: budget must be a non-negative integer, got {budget!r}")
        for feature in sorted(self.requires):
            if getattr(pool, feature) is None:
                raise ValueError(f"{self.name} requires pool.{feature}, which is None for pool {pool.lang!r}")
        n_wanted = min(int(budget), len(pool)) if self.uses_budget else len(pool)
        idx = np.asarray(self._select(pool, n_wanted), dtype=np.int64)
        if idx.ndim != 1 or len(idx) != n_wanted:
            raise ValueError(f"{self.name}: returned {idx.shape} indices, expected ({n_wanted},)")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(pool) or len(np.unique(idx)) != len(idx)):
            raise ValueError(f"{self.name}: returned out-of-range or repeated indices")
        return idx

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        raise NotImplementedError
