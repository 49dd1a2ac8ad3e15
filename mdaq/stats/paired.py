"""Paired statistics for methods scored on the same held-out preference pairs: seed averaging, stratified bootstrap
intervals, sign (McNemar) tests, Holm adjustment, corpus NLL with a delta-method SE, indistinguishable groups."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

KEYS = ("lang", "item")  # an item is a held-out pair id, unique within its language
VALUES = ("correct", "margin", "chosen_lp", "chosen_n")
CHUNK_CELLS = 2**22  # bootstrap weights held at once (resamples x items): 32 MiB of float64


# -- input checks and alignment -----------------------------------------------------------------------------------


def _check_records(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Validate one record table; return its value columns as floats, indexed and sorted by (lang, item)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in (*KEYS, *VALUES) if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}")
    if df.empty:
        raise ValueError(f"{name}: the record table is empty")
    out = df.set_index(list(KEYS))[list(VALUES)].astype(float)
    bad = df[list(KEYS)].isna().any(axis=1).to_numpy() | ~np.isfinite(out.to_numpy()).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: NaN or infinite value at row {row} ({df.iloc[row][list(KEYS)].to_dict()})")
    if out.index.duplicated().any():
        raise ValueError(f"{name}: duplicate (lang, item) {out.index[out.index.duplicated()][0]!r}")
    if ((out["correct"] < 0) | (out["correct"] > 1)).any():
        raise ValueError(f"{name}: 'correct' must lie in [0, 1]")
    if (out["chosen_n"] < 0).any():
        raise ValueError(f"{name}: 'chosen_n' must be >= 0")
    return out.sort_index()


def _align(frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Check every table and that all hold the same (lang, item) set; return them in one common row order."""
    checked = {str(name): _check_records(df, str(name)) for name, df in frames.items()}
    if not checked:
        raise ValueError("no record tables given")
    (ref_name, ref), *rest = checked.items()
    for name, df in rest:
        if df.index.equals(ref.index):
            continue
        lacks = ref.index.difference(df.index)
        if len(lacks):
            raise ValueError(
                f"misaligned items: {name} lacks (lang, item) {lacks[0]!r} that {ref_name} has "
                f"({len(lacks)} missing); methods must be scored on the same held-out pairs"
            )
        extra = df.index.difference(ref.index)
        raise ValueError(
            f"misaligned items: {name} has (lang, item) {extra[0]!r} that {ref_name} lacks ({len(extra)} extra); "
            "methods must be scored on the same held-out pairs"
        )
    return checked


def _vector(x: Any, name: str) -> np.ndarray:
    """A non-empty, finite 1-D float array."""
    v = np.asarray(x, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {v.shape}")
    if v.size == 0:
        raise ValueError(f"{name}: empty input")
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: NaN or infinite value at index {int(np.flatnonzero(~np.isfinite(v))[0])}")
    return v


def _check_boot(n_boot: int, alpha: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")


# -- seeds, bootstrap, tests --------------------------------------------------------------------------------------


def seed_average(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per-item mean over training seeds of ``correct``, ``margin``, ``chosen_lp`` and ``chosen_n``.

    Parameters
    ----------
    frames : sequence of DataFrame
        One record table per seed (columns ``lang, item, correct, margin, chosen_lp, chosen_n``; others are
        dropped), all on the same (lang, item) set; row order may differ.

    Returns
    -------
    DataFrame
        Columns ``lang, item, correct, margin, chosen_lp, chosen_n`` (floats), one row per item, sorted by
        (lang, item).

    Raises
    ------
    ValueError
        On no frames, an empty frame, a missing column, NaN, a duplicate item, or item sets that differ (the message
        names the first missing item).
    """
    if len(frames) == 0:
        raise ValueError("seed_average: no record tables given")
    tables = list(_align({f"seed frame {i}": df for i, df in enumerate(frames)}).values())
    total = sum(t.to_numpy() for t in tables)
    out = pd.DataFrame(total / len(tables), index=tables[0].index, columns=list(VALUES))
    return out.reset_index()


def _bootstrap(
    strata: np.ndarray | None, n: int, stat: Callable[[np.ndarray], np.ndarray], n_boot: int, seed: int
) -> np.ndarray:
    """``stat`` over ``n_boot`` stratified resamples, each given as a (resamples, n) matrix of item counts.

    Each stratum's items are drawn with replacement as many times as the stratum has items, so every resample keeps
    the stratum sizes. Resamples come in chunks of at most :data:`CHUNK_CELLS` cells; the stream depends only on
    ``seed``, ``n`` and the strata, so a given seed always gives the same resamples.
    """
    codes = np.zeros(n, dtype=np.int64) if strata is None else strata
    members = [np.flatnonzero(codes == s) for s in np.unique(codes)]
    rng = np.random.default_rng(seed)
    step = max(1, CHUNK_CELLS // n)
    out = []
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        weights = np.zeros((b, n))
        for idx in members:
            k = idx.size
            draws = rng.integers(0, k, size=(b, k)) + k * np.arange(b)[:, None]  # row r's draws in [rk, rk+k)
            weights[:, idx] = np.bincount(draws.ravel(), minlength=b * k).reshape(b, k)
        out.append(np.asarray(stat(weights), dtype=float).reshape(b, -1))
    return np.concatenate(out)


def _strata_codes(strata: Any, n: int) -> np.ndarray | None:
    if strata is None:
        return None
    s = np.asarray(strata)
    if s.shape != (n,):
        raise ValueError(f"strata: expected shape ({n},) like diff, got {s.shape}")
    if pd.isna(s).any():
        raise ValueError("strata: missing stratum label (NaN/None)")
    return np.unique(s, return_inverse=True)[1].ravel()


def _percentiles(boot: np.ndarray, alpha: float) -> np.ndarray:
    """Rows (lo, hi) of the percentile interval of each column."""
    return np.nanquantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)


def paired_bootstrap_ci(
    diff: Any, strata: Any = None, *, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-item paired differences, resampled within strata.

    Items are resampled with replacement within each stratum, keeping the stratum sizes, so the resampled mean
    (stratum means weighted by stratum size) is an ordinary mean over items; it matches the design in which each
    language contributes a fixed number of held-out pairs (Efron & Tibshirani 1993, §8.5, stratified sampling).

    Parameters
    ----------
    diff : array-like of float, shape (n,)
        Per-item differences (method a minus method b on the same item).
    strata : array-like, shape (n,), optional
        Stratum label of each item (e.g. ``lang``); None resamples all items together.
    n_boot : int
        Number of resamples.
    seed : int
        Seed of :func:`numpy.random.default_rng`; the result is deterministic given it.
    alpha : float
        The interval has coverage ``1 - alpha`` (percentiles ``alpha/2`` and ``1 - alpha/2``).

    Returns
    -------
    (lo, hi) : tuple of float

    Raises
    ------
    ValueError
        On empty input, NaN, wrong shapes, a missing stratum label, ``n_boot < 1`` or ``alpha`` outside (0, 1).

    References
    ----------
    B. Efron and R. J. Tibshirani, *An Introduction to the Bootstrap*, Chapman & Hall, 1993.
    """
    d = _vector(diff, "diff")
    _check_boot(n_boot, alpha)
    codes = _strata_codes(strata, d.size)
    boot = _bootstrap(codes, d.size, lambda w: w @ d / d.size, n_boot, seed)
    lo, hi = _percentiles(boot, alpha)[:, 0]
    return float(lo), float(hi)


def sign_pvalues(k: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Vectorised exact two-sided sign-test p-values: k successes of m under Binomial(m, 1/2).

    The null distribution is symmetric, so scipy's two-sided p (the mass of outcomes no likelier than k) is
    ``min(1, 2 P(X <= min(k, m - k)))``; with m = 0 it is 1.
    """
    k, m = np.asarray(k), np.asarray(m)
    return np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(k, m - k), m, 0.5))


def sign_test(diff: Any) -> float:
    """Exact two-sided sign test of per-item paired differences: are positive and negative ones equally likely?

    Zero differences (ties) are dropped; with k positive differences among m nonzero ones the p-value is
    ``scipy.stats.binomtest(k, m, 0.5).pvalue`` (1.0 when m = 0).

    For binary correctness of a single seed (``correct`` in {0, 1}), the nonzero differences are exactly the
    discordant pairs (a right and b wrong, or the reverse), so this *is* the exact McNemar test (McNemar 1947, in
    its exact binomial form). With seed-averaged correctness (values in [0, 1]) it is the sign test on the per-item
    differences: it counts items where a is right more often than b across seeds, ignoring by how much.

    Parameters
    ----------
    diff : array-like of float, shape (n,)
        Per-item differences; exact zeros are ties. Differences of seed means of {0, 0.5, 1} values are exact in
        floating point, so equal items give exact zeros.

    Returns
    -------
    float
        Two-sided p-value.

    Raises
    ------
    ValueError
        On empty input, NaN or a non-1-D array.

    References
    ----------
    Q. McNemar, "Note on the sampling error of the difference between correlated proportions or percentages",
    *Psychometrika* 12 (1947) 153-157.
    """
    d = _vector(diff, "diff")
    k, m = int((d > 0).sum()), int((d != 0).sum())
    return 1.0 if m == 0 else float(stats.binomtest(k, m, 0.5).pvalue)


def holm(pvalues: Any) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control, any dependence).

    With the m non-NaN p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted value of the j-th is
    ``min(1, max_{i <= j} (m - i + 1) p_(i))``; rejecting where the adjusted p is ``<= alpha`` is Holm's procedure at
    level alpha. NaN entries stay NaN and are not counted in m (a failed test is not part of the family).

    Parameters
    ----------
    pvalues : array-like of float, shape (k,)
        Raw p-values in [0, 1], or NaN.

    Returns
    -------
    numpy.ndarray, shape (k,)
        Adjusted p-values in the input order.

    Raises
    ------
    ValueError
        On a non-1-D input or a value outside [0, 1].

    References
    ----------
    S. Holm, "A simple sequentially rejective multiple test procedure", *Scand. J. Statist.* 6 (1979) 65-70.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"pvalues: expected a 1-D array, got shape {p.shape}")
    ok = ~np.isnan(p)
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError("pvalues: every p-value must lie in [0, 1] (or be NaN)")
    q = p[ok]
    order = np.argsort(q, kind="stable")
    adjusted = np.empty_like(q)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((q.size - np.arange(q.size)) * q[order]))
    out = np.full_like(p, np.nan)
    out[ok] = adjusted
    return out


def ratio_nll(chosen_lp: Any, chosen_n: Any) -> tuple[float, float]:
    """Corpus per-token NLL of the revised responses, ``-sum(lp) / sum(n)``, with a delta-method SE over items.

    The NLL is a ratio estimator R = ȳ / x̄ with y_i = -lp_i and x_i = n_i, and items are the sampling units. Its
    linearised (delta-method) standard error is ``SE = sqrt(sum_i (y_i - R x_i)^2 / (N (N - 1))) / x̄``
    (Cochran 1977, §6.4), NaN for a single item.

    Parameters
    ----------
    chosen_lp : array-like of float, shape (N,)
        Summed log-probability of each revised response's tokens.
    chosen_n : array-like of float, shape (N,)
        Its token count (>= 0, with a positive total).

    Returns
    -------
    (nll, se) : tuple of float

    Raises
    ------
    ValueError
        On empty input, NaN, lengths that differ, a negative count or a zero token total.

    References
    ----------
    W. G. Cochran, *Sampling Techniques*, 3rd ed., Wiley, 1977.
    """
    y, x = -_vector(chosen_lp, "chosen_lp"), _vector(chosen_n, "chosen_n")
    if y.size != x.size:
        raise ValueError(f"chosen_lp and chosen_n differ in length ({y.size} vs {x.size})")
    if (x < 0).any() or x.sum() <= 0:
        raise ValueError("chosen_n must be >= 0 with a positive total")
    n, r = y.size, y.sum() / x.sum()
    se = math.sqrt(((y - r * x) ** 2).sum() / (n * (n - 1))) / x.mean() if n > 1 else math.nan
    return float(r), float(se)


# -- method comparisons -------------------------------------------------------------------------------------------


def _compare_aligned(a: pd.DataFrame, b: pd.DataFrame, n_boot: int, seed: int, alpha: float) -> dict[str, Any]:
    """:func:`paired_compare` on two tables already checked and in the same row order."""
    n = len(a)
    d_acc = a["correct"].to_numpy() - b["correct"].to_numpy()
    d_margin = a["margin"].to_numpy() - b["margin"].to_numpy()
    ya, xa = -a["chosen_lp"].to_numpy(), a["chosen_n"].to_numpy()
    yb, xb = -b["chosen_lp"].to_numpy(), b["chosen_n"].to_numpy()
    nll_a, nll_b = ratio_nll(-ya, xa)[0], ratio_nll(-yb, xb)[0]

    def stat(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):  # a resample of zero-token items only: NaN, skipped
            d_nll = (w @ ya) / (w @ xa) - (w @ yb) / (w @ xb)
        return np.column_stack([w @ d_acc / n, w @ d_margin / n, d_nll])

    codes = _strata_codes(a.index.get_level_values("lang").to_numpy(), n)
    (acc_lo, margin_lo, nll_lo), (acc_hi, margin_hi, nll_hi) = _percentiles(
        _bootstrap(codes, n, stat, n_boot, seed), alpha
    )
    return {
        "n": n,
        "acc_a": float(a["correct"].mean()),
        "acc_b": float(b["correct"].mean()),
        "d_acc": float(d_acc.mean()),
        "d_acc_lo": float(acc_lo),
        "d_acc_hi": float(acc_hi),
        "p_acc": sign_test(d_acc),
        "n_a_better": int((d_acc > 0).sum()),
        "n_b_better": int((d_acc < 0).sum()),
        "d_margin": float(d_margin.mean()),
        "d_margin_lo": float(margin_lo),
        "d_margin_hi": float(margin_hi),
        "p_margin": sign_test(d_margin),
        "nll_a": nll_a,
        "nll_b": nll_b,
        "d_nll": nll_a - nll_b,
        "d_nll_lo": float(nll_lo),
        "d_nll_hi": float(nll_hi),
    }


def paired_compare(
    a: pd.DataFrame, b: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05
) -> dict[str, Any]:
    """Compare method a with method b on the same held-out items (paired, stratified by language).

    Parameters
    ----------
    a, b : DataFrame
        Record tables (see :func:`seed_average`) on the same (lang, item) set.
    n_boot, seed, alpha
        As in :func:`paired_bootstrap_ci`; the three intervals share the same resamples (stratified by ``lang``),
        so ``d_acc_lo/hi`` equal ``paired_bootstrap_ci(a.correct - b.correct, lang, ...)``.

    Returns
    -------
    dict
        ``n``; ``acc_a``, ``acc_b`` (mean ``correct``); ``d_acc`` = mean(a.correct - b.correct), its interval
        ``d_acc_lo/hi`` and sign-test (McNemar for one binary seed) p-value ``p_acc``; ``n_a_better`` /
        ``n_b_better``, the items where the difference is > 0 / < 0; ``d_margin``, ``d_margin_lo/hi``, ``p_margin``
        likewise for the log-likelihood margin; ``nll_a``, ``nll_b`` (:func:`ratio_nll`) and ``d_nll`` = nll_a -
        nll_b (negative: a fits the revised responses better) with ``d_nll_lo/hi``.

    Raises
    ------
    ValueError
        On misaligned items (the message names the first one), an empty table, NaN or a missing column.
    """
    _check_boot(n_boot, alpha)
    t = _align({"a": a, "b": b})
    return _compare_aligned(t["a"], t["b"], n_boot, seed, alpha)


def compare_table(
    records: Mapping[str, pd.DataFrame], against: str, *, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05
) -> pd.DataFrame:
    """Every method against a reference method, with Holm-adjusted p-values over the rows of the table.

    Parameters
    ----------
    records : mapping of str to DataFrame
        Method name -> record table, all on the same (lang, item) set.
    against : str
        The reference method (the ``b`` of every :func:`paired_compare`).
    n_boot, seed, alpha
        As in :func:`paired_compare`; every row uses the same ``seed``, hence the same resamples of items.

    Returns
    -------
    DataFrame
        One row per other method, sorted by name: ``method``, ``against`` and the :func:`paired_compare` keys,
        plus ``p_acc_holm``, ``p_margin_holm`` (:func:`holm` over this table's rows) and ``significant``
        (``p_acc_holm < alpha``).

    Raises
    ------
    ValueError
        If ``against`` is not in ``records``, there is no other method, or the tables are misaligned.
    """
    _check_boot(n_boot, alpha)
    if against not in records:
        raise ValueError(f"reference method {against!r} not in records (have {sorted(records)})")
    if len(records) < 2:
        raise ValueError("compare_table needs at least one method besides the reference")
    t = _align(records)
    rows = [
        {"method": m, "against": against, **_compare_aligned(t[m], t[against], n_boot, seed, alpha)}
        for m in sorted(t)
        if m != against
    ]
    table = pd.DataFrame(rows)
    table["p_acc_holm"] = holm(table["p_acc"])
    table["p_margin_holm"] = holm(table["p_margin"])
    table["significant"] = table["p_acc_holm"] < alpha
    return table


def indistinguishable_groups(records: Mapping[str, pd.DataFrame], *, alpha: float = 0.05) -> list[list[str]]:
    """Group methods whose expert-preference accuracy the data cannot tell apart.

    Rule: sort methods by mean ``correct`` (descending, ties by name). Run the sign test (:func:`sign_test` on
    per-item ``correct`` differences) for *every* pair of methods and Holm-adjust over all m(m-1)/2 of them (the
    family is fixed in advance, so it does not depend on the grouping). Walk down the sorted list: the best method
    opens a group; each next method joins the current group while its adjusted p against the group's *first*
    member is ``>= alpha``, otherwise it opens a new group. Groups are therefore contiguous in the ranking and each
    member is indistinguishable from its group's leader (not necessarily from every other member).

    Parameters
    ----------
    records : mapping of str to DataFrame
        Method name -> record table, all on the same (lang, item) set.
    alpha : float
        Family-wise level.

    Returns
    -------
    list of list of str
        Groups in ranking order, each in ranking order.

    Raises
    ------
    ValueError
        On no records, misaligned items or ``alpha`` outside (0, 1).
    """
    _check_boot(1, alpha)
    t = _align(records)
    names = sorted(t, key=lambda m: (-float(t[m]["correct"].mean()), m))
    pairs = list(itertools.combinations(names, 2))  # (better, worse) in ranking order
    p = holm([sign_test(t[x]["correct"].to_numpy() - t[y]["correct"].to_numpy()) for x, y in pairs])
    adjusted = dict(zip(pairs, p, strict=True))
    groups = [[names[0]]]
    for m in names[1:]:
        if adjusted[(groups[-1][0], m)] >= alpha:
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups
