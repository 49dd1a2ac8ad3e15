"""Controls: selectors that read the evaluation label, to show whether the metric can tell good data from bad.

They are not methods and never rank among them. ``oracle_revised`` trains on expert-revised pool samples only (the
best data MIDB can give at the budget), ``oracle_raw`` on raw machine translations only (the worst). If, at a
profile's scale, the judge-free metric does not separate the two, it cannot rank selection methods either, and the
leaderboard says so instead of ranking.
"""

from __future__ import annotations

import numpy as np

from mdaq.selectors.base import SELECTORS, BaseSelector
from mdaq.types import Pool


def _labels(pool: Pool, name: str) -> np.ndarray:
    missing = [s.id for s in pool.samples if "is_revised" not in s.meta]
    if missing:
        raise ValueError(
            f"{name} needs the evaluation label meta['is_revised'] on every pool sample; {pool.lang!r} sample "
            f"{missing[0]} has none (a control runs only on MIDB pools built by `prepare`)"
        )
    return np.array([bool(s.meta["is_revised"]) for s in pool.samples])


class _OracleSelector(BaseSelector):
    """A seeded random subset of the pool samples whose label ``is_revised`` equals ``revised``; when there are
    fewer than the budget, the rest is filled at random from the others (and the share in ``metrics.json`` shows
    it)."""

    role = "control"
    revised: bool = True

    def __init__(self, *, random_state: int = 0):
        self.random_state = random_state

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        wanted = _labels(pool, self.name) == self.revised
        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(len(pool))
        return np.concatenate([order[wanted[order]], order[~wanted[order]]])[:budget].astype(np.int64)


@SELECTORS.register("oracle_revised")
class OracleRevisedSelector(_OracleSelector):
    """Positive control: expert-revised samples only (reads the evaluation label)."""

    name = "oracle_revised"
    version = "1"
    revised = True


@SELECTORS.register("oracle_raw")
class OracleRawSelector(_OracleSelector):
    """Negative control: raw machine-translated samples only (reads the evaluation label)."""

    name = "oracle_raw"
    version = "1"
    revised = False
