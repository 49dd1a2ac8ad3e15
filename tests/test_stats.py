"""mdaq.stats: paired bootstrap, sign/McNemar tests, Holm, ratio NLL, method comparisons, power."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from mdaq.stats import (
    compare_table,
    holm,
    indistinguishable_groups,
    mdd_paired_binary,
    mdd_paired_continuous,
    n_paired_binary,
    paired_bootstrap_ci,
    paired_compare,
    ratio_nll,
    seed_average,
    sign_test,
    simulated_power,
)

LANGS = ("de", "fr", "ja", "no")


def _records(correct, seed=0, langs=LANGS) -> pd.DataFrame:
    """A record table over len(correct) items spread over ``langs``, with margins and log-probs from ``seed``."""
    rng = np.random.default_rng(seed)
    correct = np.asarray(correct, dtype=float)
    n = correct.size
    chosen_n = rng.integers(5, 60, size=n)
    return pd.DataFrame(
        {
            "lang": [langs[i % len(langs)] for i in range(n)],
            "item": [f"p{i:04d}" for i in range(n)],
            "correct": correct,
            "margin": np.where(correct > 0.5, 1, -1) * rng.exponential(0.3, n),
            "chosen_lp": -chosen_n * rng.uniform(1.5, 3.0, n),
            "chosen_n": chosen_n,
        }
    )


def _exact_mcnemar(b10: int, b01: int) -> float:
    """Exact two-sided McNemar p from its definition: 2 P(Bin(b10 + b01, 1/2) <= min(b10, b01)), capped at 1."""
    m = b10 + b01
    return min(1.0, 2 * sum(math.comb(m, k) for k in range(min(b10, b01) + 1)) / 2**m)


# -- seed_average ---------------------------------------------------------------------------------------------------


def test_seed_average_means_per_item_whatever_the_row_order():
    s0, s1 = _records([1, 0, 1, 0.5], seed=0), _records([0, 0, 1, 1], seed=1)
    out = seed_average([s0, s1.iloc[::-1]])
    assert list(out.columns) == ["lang", "item", "correct", "margin", "chosen_lp", "chosen_n"]
    out = out.set_index("item").loc[s0["item"]]
    np.testing.assert_allclose(out["correct"], [0.5, 0.0, 1.0, 0.75])
    for col in ("margin", "chosen_lp", "chosen_n"):
        np.testing.assert_allclose(out[col], (s0[col].to_numpy() + s1[col].to_numpy()) / 2)


def test_seed_average_names_the_missing_item():
    s0, s1 = _records([1, 0, 1, 0]), _records([1, 0, 1, 0])
    with pytest.raises(ValueError, match=r"seed frame 1 lacks .*'p0002'"):
        seed_average([s0, s1.drop(index=2)])
    extra = pd.concat([s1, s1.iloc[[0]].assign(item="p0099")])
    with pytest.raises(ValueError, match=r"seed frame 1 has .*'p0099'"):
        seed_average([s0, extra])


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([], "no record tables"),
        ([_records([]).iloc[:0]], "empty"),
        ([_records([1, 0]).assign(margin=[0.1, np.nan])], "NaN"),
        ([_records([1, 0]).drop(columns="chosen_lp")], "missing column"),
        ([_records([1, 0]).assign(lang="de", item="same")], "duplicate"),
        ([_records([1, 2])], r"\[0, 1\]"),
    ],
)
def test_seed_average_rejects_bad_input(frames, match):
    with pytest.raises(ValueError, match=match):
        seed_average(frames)


# -- bootstrap ------------------------------------------------------------------------------------------------------


def test_bootstrap_ci_covers_the_mean_with_the_textbook_width():
    x = np.random.default_rng(1).normal(0.3, 1.0, 4000)
    lo, hi = paired_bootstrap_ci(x, n_boot=2000, seed=0)
    assert lo < 0.3 < hi
    assert lo < x.mean() < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * x.std(ddof=1) / math.sqrt(x.size), rel=0.1)


def test_bootstrap_ci_coverage_over_repeated_samples():
    rng = np.random.default_rng(2)
    hits = [
        lo <= 0.1 <= hi
        for lo, hi in (paired_bootstrap_ci(rng.normal(0.1, 1, 200), n_boot=400, seed=s) for s in range(200))
    ]
    assert 0.88 <= np.mean(hits) <= 0.99


def test_bootstrap_ci_is_deterministic_given_seed():
    x = np.random.default_rng(3).normal(size=300)
    strata = np.repeat(["a", "b", "c"], 100)
    assert paired_bootstrap_ci(x, strata, seed=5) == paired_bootstrap_ci(x, strata, seed=5)
    assert paired_bootstrap_ci(x, strata, seed=5) != paired_bootstrap_ci(x, strata, seed=6)


def test_bootstrap_stratification_keeps_stratum_sizes():
    # zero variance within each stratum: only a change of stratum counts could move the mean away from 0.7
    x = np.r_[np.zeros(30), np.ones(70)]
    strata = np.r_[np.full(30, "de"), np.full(70, "fr")]
    assert paired_bootstrap_ci(x, strata, n_boot=500) == pytest.approx((0.7, 0.7), abs=1e-12)
    lo, hi = paired_bootstrap_ci(x, None, n_boot=500)
    assert lo < 0.65 and hi > 0.75  # unstratified: the counts move


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"diff": []}, "empty"),
        ({"diff": [0.1, np.nan]}, "NaN"),
        ({"diff": [0.1, 0.2], "strata": ["a"]}, "shape"),
        ({"diff": [0.1, 0.2], "strata": ["a", None]}, "stratum"),
        ({"diff": [0.1, 0.2], "n_boot": 0}, "n_boot"),
        ({"diff": [0.1, 0.2], "alpha": 1.5}, "alpha"),
    ],
)
def test_bootstrap_ci_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        paired_bootstrap_ci(**kwargs)


# -- sign test / McNemar ----------------------------------------------------------------------------------------------


def test_sign_test_is_exact_mcnemar_for_binary_correctness():
    rng = np.random.default_rng(4)
    a = (rng.random(500) < 0.62).astype(float)
    b = np.where(rng.random(500) < 0.8, a, 1 - a)  # correlated, ~20% discordant
    b10, b01 = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    p = sign_test(a - b)
    assert p == pytest.approx(sps.binomtest(b10, b10 + b01, 0.5).pvalue, rel=1e-12)
    assert p == pytest.approx(_exact_mcnemar(b10, b01), rel=1e-9)


def test_sign_test_drops_ties_for_seed_averaged_differences():
    d = [0.5, -1 / 3, 0.0, 0.0, 2 / 3, 0.25, 0.0]
    assert sign_test(d) == pytest.approx(sps.binomtest(3, 4, 0.5).pvalue)
    assert sign_test([0.0, 0.0]) == 1.0
    with pytest.raises(ValueError, match="empty"):
        sign_test([])
    with pytest.raises(ValueError, match="NaN"):
        sign_test([1.0, np.nan])


# -- Holm -----------------------------------------------------------------------------------------------------------


def test_holm_hand_example_and_nan_passthrough():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.01, np.nan, 0.04, 0.03]), [0.03, np.nan, 0.06, 0.06])  # NaN not counted
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # capped
    assert holm([]).shape == (0,)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.2])


def test_holm_matches_the_step_down_procedure():
    p = np.random.default_rng(5).uniform(0, 0.2, 12) ** 2
    adj = holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0) and np.all(adj >= p) and np.all(adj <= 1)
    for alpha in np.linspace(0.001, 0.2, 60):
        rejected = np.zeros(p.size, bool)
        for j, i in enumerate(order):  # Holm: reject p_(j) while p_(j) <= alpha / (m - j)
            if p[i] > alpha / (p.size - j):
                break
            rejected[i] = True
        np.testing.assert_array_equal(adj <= alpha, rejected)


def test_holm_matches_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(6).uniform(0, 0.1, 15)
    np.testing.assert_allclose(holm(p), multitest.multipletests(p, method="holm")[1])


# -- ratio NLL ------------------------------------------------------------------------------------------------------


def test_ratio_nll_value_and_delta_method_se_against_a_brute_bootstrap():
    assert ratio_nll([-2.0, -6.0], [1, 3]) == pytest.approx((2.0, 0.0))
    rng = np.random.default_rng(7)
    n_tok = rng.integers(3, 120, 800)
    lp = -n_tok * rng.gamma(4, 0.6, 800)  # per-item per-token NLL varies
    nll, se = ratio_nll(lp, n_tok)
    assert nll == pytest.approx(-lp.sum() / n_tok.sum())
    idx = rng.integers(0, 800, size=(3000, 800))
    brute = (-lp[idx]).sum(axis=1) / n_tok[idx].sum(axis=1)
    assert se == pytest.approx(brute.std(ddof=1), rel=0.2)
    assert math.isnan(ratio_nll([-3.0], [2])[1])
    for bad, match in [(([-1.0], [1, 2]), "length"), (([-1.0], [0]), "positive"), (([np.nan], [1]), "NaN")]:
        with pytest.raises(ValueError, match=match):
            ratio_nll(*bad)


# -- comparisons ----------------------------------------------------------------------------------------------------


def test_paired_compare_matches_its_parts():
    rng = np.random.default_rng(8)
    a = _records((rng.random(400) < 0.65).astype(float), seed=1)
    b = _records(np.where(rng.random(400) < 0.75, a["correct"], 1 - a["correct"]), seed=2)
    out = paired_compare(a, b.sample(frac=1, random_state=0), n_boot=500, seed=3)  # join, not row order
    d = a["correct"].to_numpy() - b["correct"].to_numpy()
    assert out["n"] == 400
    assert out["d_acc"] == pytest.approx(d.mean())
    assert (out["d_acc_lo"], out["d_acc_hi"]) == paired_bootstrap_ci(d, a["lang"], n_boot=500, seed=3)
    assert (out["n_a_better"], out["n_b_better"]) == (int((d > 0).sum()), int((d < 0).sum()))
    assert out["p_acc"] == pytest.approx(_exact_mcnemar(out["n_a_better"], out["n_b_better"]))
    assert out["d_margin"] == pytest.approx((a["margin"] - b["margin"]).mean())
    assert out["p_margin"] == sign_test(a["margin"].to_numpy() - b["margin"].to_numpy())
    d_nll = ratio_nll(a["chosen_lp"], a["chosen_n"])[0] - ratio_nll(b["chosen_lp"], b["chosen_n"])[0]
    assert out["d_nll"] == pytest.approx(d_nll)
    for key in ("d_acc", "d_margin", "d_nll"):
        assert out[f"{key}_lo"] < out[key] < out[f"{key}_hi"]
    back = paired_compare(b, a, n_boot=500, seed=3)
    assert back["d_acc"] == pytest.approx(-out["d_acc"]) and back["p_acc"] == pytest.approx(out["p_acc"])
    assert back["d_nll_lo"] == pytest.approx(-out["d_nll_hi"])  # same resamples, negated statistic


def test_paired_compare_rejects_misaligned_items():
    a, b = _records([1, 0, 1, 0]), _records([1, 1, 0, 0])
    with pytest.raises(ValueError, match=r"b lacks .*'p0001'"):
        paired_compare(a, b.drop(index=1))
    with pytest.raises(ValueError, match=r"misaligned items: b lacks .*\('de', 'p0000'\)"):
        paired_compare(a, b.assign(lang="fr"))


def test_compare_table_rows_and_holm_columns():
    rng = np.random.default_rng(9)
    ref = (rng.random(300) < 0.5).astype(float)
    records = {
        "vanilla": _records(ref, seed=0),
        "z_strong": _records(np.maximum(ref, rng.random(300) < 0.4), seed=1),
        "a_same": _records(ref, seed=2),
    }
    table = compare_table(records, "vanilla", n_boot=200, seed=0)
    assert list(table["method"]) == ["a_same", "z_strong"] and set(table["against"]) == {"vanilla"}
    np.testing.assert_allclose(table["p_acc_holm"], holm(table["p_acc"]))
    np.testing.assert_allclose(table["p_margin_holm"], holm(table["p_margin"]))
    assert list(table["significant"]) == [False, True]
    with pytest.raises(ValueError, match="not in records"):
        compare_table(records, "missing", n_boot=10, seed=0)


def test_indistinguishable_groups_split_at_a_clear_gap():
    rng = np.random.default_rng(10)
    top = (rng.random(600) < 0.8).astype(float)
    low = (rng.random(600) < 0.5).astype(float)
    near = top.copy()
    near[np.flatnonzero(top == 1)[:5]] = 0  # b_top loses 5 items and wins 3: 8 discordant pairs, p = 0.73
    near[np.flatnonzero(top == 0)[:3]] = 1
    records = {
        "b_top": _records(near),
        "a_top": _records(top),
        "d_low": _records(low),
        "c_low": _records(low),  # tie with d_low: ordered by name
    }
    assert indistinguishable_groups(records) == [["a_top", "b_top"], ["c_low", "d_low"]]
    assert indistinguishable_groups({"x": records["a_top"]}) == [["x"]]


def test_indistinguishable_groups_use_holm_over_all_pairs():
    # a beats b on 27 of 40 discordant items: raw p ~ 0.038 < 0.05, but it is the 5th smallest of 6 pairwise p's
    # (c and d are identical and far below), so Holm multiplies it by 2 and a, b stay together.
    k, m, n = 27, 40, 400
    a = np.r_[np.ones(k), np.zeros(m - k), np.ones(300), np.zeros(n - m - 300)]
    b = np.r_[np.zeros(k), np.ones(m - k), np.ones(300), np.zeros(n - m - 300)]
    low = np.r_[np.zeros(300), np.ones(100)]
    assert 0.025 < sign_test(a - b) < 0.05
    records = {"a": _records(a), "b": _records(b), "c": _records(low), "d": _records(low)}
    assert indistinguishable_groups(records) == [["a", "b"], ["c", "d"]]
    assert indistinguishable_groups({"a": records["a"], "b": records["b"]}) == [["a"], ["b"]]  # 1 test: split


# -- power ----------------------------------------------------------------------------------------------------------


def test_n_paired_binary_textbook_example():
    # Connor (1987) formula by hand: psi = 0.2, delta = 0.1, alpha = .05, power = .8
    by_hand = (1.959964 * math.sqrt(0.2) + 0.841621 * math.sqrt(0.2 - 0.1**2)) ** 2 / 0.1**2  # 154.6
    assert abs(n_paired_binary(0.1, 0.2, alpha=0.05, power=0.8) - by_hand) <= 1
    assert n_paired_binary(0.1, 0.2) == 155
    assert n_paired_binary(-0.1, 0.2) == 155


@pytest.mark.parametrize(("delta", "psi"), [(0.1, 0.2), (0.03, 0.3), (0.05, 0.15), (0.2, 0.25)])
def test_power_round_trip(delta, psi):
    n = n_paired_binary(delta, psi, alpha=0.05, power=0.8)
    assert mdd_paired_binary(n, psi) <= delta < mdd_paired_binary(n - 1, psi)
    strict = n_paired_binary(delta, psi, alpha=0.01, power=0.9)
    assert strict > n
    assert mdd_paired_binary(strict, psi, alpha=0.01, power=0.9) <= delta
    assert n_paired_binary(mdd_paired_binary(strict, psi, alpha=0.01, power=0.9), psi, alpha=0.01, power=0.9) == strict


def test_mdd_continuous_formula_and_small_delta_limit():
    assert mdd_paired_continuous(100, 1.0) == pytest.approx((1.959964 + 0.841621) / 10, rel=1e-6)
    # for small delta the binary mdd tends to the continuous one with sd = sqrt(psi)
    assert mdd_paired_binary(1e6, 0.3) == pytest.approx(mdd_paired_continuous(1e6, math.sqrt(0.3)), rel=1e-3)


def test_simulated_power_of_the_exact_test_at_the_mdd():
    delta = mdd_paired_binary(900, 0.3)
    assert simulated_power(delta, 0.3, 900, n_sim=4000, seed=0) == pytest.approx(0.8, abs=0.04)
    assert simulated_power(0.0, 0.3, 900, n_sim=4000, seed=0) <= 0.06  # size: the exact test is conservative


def test_sign_test_pvalues_in_simulation_match_binomtest():
    # simulated_power's vectorised p-values must be binomtest's: a study at the boundary flips the power
    for n_disc in (0, 1, 7, 30):
        for k in range(n_disc + 1):
            d = np.r_[np.ones(k), -np.ones(n_disc - k), np.zeros(3)]
            ref = 1.0 if n_disc == 0 else sps.binomtest(k, n_disc, 0.5).pvalue
            assert sign_test(d) == pytest.approx(ref)
    # power equals the share of studies whose exact binomtest p is below alpha, recomputed from the same draws
    counts = np.random.default_rng(11).multinomial(60, [0.2, 0.1, 0.7], size=300)
    expected = np.mean([sps.binomtest(int(c[0]), int(c[0] + c[1]), 0.5).pvalue < 0.05 for c in counts])
    assert simulated_power(0.1, 0.3, 60, n_sim=300, seed=11) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: mdd_paired_binary(3, 0.3), "too small"),
        (lambda: n_paired_binary(0.4, 0.3), "delta"),
        (lambda: n_paired_binary(0.1, 0.0), "p_discordant"),
        (lambda: mdd_paired_binary(100, 0.3, power=1.0), "power"),
        (lambda: simulated_power(0.5, 0.3, 100), "delta"),
    ],
)
def test_power_rejects_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
