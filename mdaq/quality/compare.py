"""Paired tests of a scorer against baselines on the same held-out pairs, per length stratum and language group.

Each test takes the pairs of one (group, stratum), pooled over the group's languages, and the per-pair difference
in correctness (reference minus baseline, each 1 / ½ / 0): its mean with a paired bootstrap 95% interval (pairs
resampled within each language) and an exact two-sided sign test (McNemar's exact test when neither scorer ties),
from :mod:`mdaq.stats`. The p-values are Holm-adjusted over the whole table, the (baseline × stratum × group) family.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mdaq.quality.evaluate import GROUPS, STRATA
from mdaq.stats import holm, paired_bootstrap_ci, sign_test

N_BOOT = 2000
STATS = ("acc_reference", "acc_baseline", "d_acc", "d_lo", "d_hi", "n_reference_better", "n_baseline_better", "p_sign")
COLUMNS = ("reference", "baseline", "group", "stratum", "n", "n_langs", *STATS, "p_holm")


def paired_tests(
    pairs: pd.DataFrame,
    reference: str = "qsm",
    baselines: Sequence[str] = ("length", "surface"),
    *,
    groups: Sequence[str] = GROUPS,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (baseline, group, stratum): ``n``, ``n_langs``, the pooled accuracies ``acc_reference`` /
    ``acc_baseline``, ``d_acc`` with ``d_lo`` / ``d_hi``, the counts of pairs either scorer wins, ``p_sign`` and
    ``p_holm``. A (group, stratum) without pairs has NaN statistics and stays out of the Holm family.

    Parameters
    ----------
    pairs : DataFrame
        :func:`mdaq.quality.evaluate.score_table` output holding ``reference`` and every baseline.
    groups : sequence of str
        Language groups (``seen``, ``unseen``, ``all``); a group without languages is skipped.
    n_boot, seed
        As in :func:`mdaq.stats.paired_bootstrap_ci`; every row uses the same seed.

    Raises
    ------
    ValueError
        When a scorer is missing from ``pairs``, or the two scorers were not scored on the same pairs.
    """
    ref = _scorer(pairs, reference)
    rows = []
    for baseline in baselines:
        base = _scorer(pairs, baseline)
        if not ref.index.equals(base.index):
            raise ValueError(f"scorers {reference!r} and {baseline!r} were not scored on the same (lang, item) pairs")
        for group in groups:
            in_group = ref["split"].eq(group) | (group == "all")
            if not in_group.any():
                continue
            for stratum in STRATA:
                keep = (in_group & ref[stratum]).to_numpy()
                row = {"reference": reference, "baseline": baseline, "group": group, "stratum": stratum}
                rows.append(row | _test(ref[keep], base[keep], n_boot, seed))
    out = pd.DataFrame(rows, columns=list(COLUMNS[:-1]))
    out["p_holm"] = holm(out["p_sign"].to_numpy(dtype=float))
    return out


def _scorer(pairs: pd.DataFrame, name: str) -> pd.DataFrame:
    sub = pairs[pairs["scorer"] == name]
    if sub.empty:
        raise ValueError(f"no pairs scored by {name!r} (scorers: {sorted(pairs['scorer'].unique())})")
    return sub.set_index(["lang", "item"]).sort_index()


def _test(ref: pd.DataFrame, base: pd.DataFrame, n_boot: int, seed: int) -> dict[str, Any]:
    """Statistics of one (group, stratum) cell."""
    n = len(ref)
    d = ref["correct"].to_numpy(float) - base["correct"].to_numpy(float)
    out: dict[str, Any] = {"n": n, "n_langs": int(ref.index.get_level_values("lang").nunique())}
    if n == 0:
        return out | dict.fromkeys(STATS, float("nan")) | {"n_reference_better": 0, "n_baseline_better": 0}
    lo, hi = paired_bootstrap_ci(d, ref.index.get_level_values("lang").to_numpy(), n_boot=n_boot, seed=seed)
    return out | {
        "acc_reference": float(ref["correct"].mean()),
        "acc_baseline": float(base["correct"].mean()),
        "d_acc": float(np.mean(d)),
        "d_lo": lo,
        "d_hi": hi,
        "n_reference_better": int((d > 0).sum()),
        "n_baseline_better": int((d < 0).sum()),
        "p_sign": sign_test(d),
    }
