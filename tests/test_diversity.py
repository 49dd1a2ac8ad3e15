"""DAS, k-center and MMR on tiny known geometries."""

from __future__ import annotations

import numpy as np
import pytest

from mdaq import Pool, Sample, get_selector
from mdaq.selectors.algorithms import (
    das_select,
    default_n_clusters,
    kcenter_greedy,
    mmr_select,
    mmr_select_naive,
    split_budget,
)


def test_default_clusters_and_budget_split():
    assert default_n_clusters(52002) == 161 and default_n_clusters(1) == 1  # CaR's Alpaca value
    assert split_budget(7, 6, 1) == (6, 1) and split_budget(1000, 6, 1) == (857, 143)
    with pytest.raises(ValueError):
        split_budget(10, 0, 0)


def test_das_follows_algorithm_1():
    quality = np.array([9, 8, 7, 6, 5, 4, 3, 2.0])
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    # quality part: 0, 1 (cluster 0 covered); diversity: first of clusters 1, 2, 3 in quality order
    np.testing.assert_array_equal(das_select(quality, labels, 2, 3), [0, 1, 2, 4, 6])
    # never two diversity picks from one cluster, and never from a covered cluster
    np.testing.assert_array_equal(das_select(quality, labels, 3, 2), [0, 1, 2, 4, 6])


def test_das_fill_when_clusters_run_out():
    quality, labels = np.array([5, 4, 3, 2, 1.0]), np.array([0, 0, 0, 1, 1])
    np.testing.assert_array_equal(das_select(quality, labels, 2, 3, fill=False), [0, 1, 3])
    np.testing.assert_array_equal(das_select(quality, labels, 2, 3, fill=True), [0, 1, 3, 2, 4])


def test_das_coverage_is_monotone_in_budget():
    rng = np.random.default_rng(0)
    quality, labels = rng.normal(size=500), rng.integers(0, 40, size=500)
    covered = [len(set(labels[das_select(quality, labels, b - b // 7, b // 7)])) for b in (7, 14, 35, 70, 140)]
    assert covered == sorted(covered)


def test_kcenter_picks_far_points_and_skips_duplicates():
    x = np.array([[0, 0], [0, 0], [10, 0], [0, 10], [0.1, 0]], dtype=np.float32)
    assert set(kcenter_greedy(x, 3, first=0).tolist()) == {0, 2, 3}


def test_mmr_trades_quality_for_novelty():
    x = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)  # 0 and 1 are duplicates
    q = np.array([1.0, 0.99, 0.5])
    assert mmr_select(q, x, 2, lam=1.0).tolist() == [0, 1]  # pure quality
    assert mmr_select(q, x, 2, lam=0.5).tolist() == [0, 2]  # duplicate penalised


def test_mdaq_das_selector_covers_clusters():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(5, 8)) * 10
    emb = np.repeat(centers, 20, axis=0) + rng.normal(size=(100, 8)) * 0.1
    quality = np.concatenate([np.full(20, 10.0), rng.normal(size=80)])  # cluster 0 is the best
    pool = Pool(
        "de",
        [Sample.create("de", f"i{i}", "", f"o{i}") for i in range(100)],
        quality=quality,
        embeddings=emb.astype(np.float32),
    )
    idx = get_selector("mdaq_das", {"n_quality_ratio": 6, "n_diversity_ratio": 1, "n_clusters": 5}).select(pool, 14)
    assert (idx[:12] < 20).all()  # quality part all from the best cluster
    assert len({int(i) // 20 for i in idx[12:]}) == 2 and all(i >= 20 for i in idx[12:])
    car = get_selector("car", {"n_clusters": 5}).select(pool, 14)
    assert len({int(i) // 20 for i in car[:5]}) == 5  # one representative per cluster first


@pytest.mark.parametrize(("n", "d", "budget"), [(2000, 4, 300), (1500, 64, 200), (300, 8, 300)])
@pytest.mark.parametrize("lam", [0.3, 0.7, 1.0])
def test_mmr_equals_the_naive_loop(n, d, budget, lam):
    rng = np.random.default_rng(n + d)
    x, q = rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=n)
    np.testing.assert_array_equal(
        mmr_select(q, x, budget, lam, block=16, chunk=32), mmr_select_naive(q, x, budget, lam)
    )


def _naive_score_first(x, order, budget, tau):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    kept = []
    for i in order:
        if len(kept) == budget:
            break
        if all(float(x[i] @ x[j]) < tau for j in kept):
            kept.append(int(i))
    return kept


@pytest.mark.parametrize("tau", [0.0, 0.3, 0.8, 1.01])
@pytest.mark.parametrize("block", [1, 7, 512])
def test_score_first_filter_matches_naive_walk(tau, block):
    from mdaq.selectors.algorithms import score_first_filter

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    order = rng.permutation(300)
    got = score_first_filter(x, order, 40, tau, block=block)
    assert got.tolist() == _naive_score_first(x, order, 40, tau)


def test_deita_drops_near_duplicates_and_fills_budget(toy_pool):
    from mdaq import Pool, get_selector

    n = len(toy_pool)
    emb = np.zeros((n, 3), dtype=np.float32)
    emb[:, 0] = 1.0  # every sample identical except the last, orthogonal one
    emb[-1] = [0.0, 1.0, 0.0]
    quality = np.arange(n, dtype=float)[::-1]  # sample 0 best, last worst
    pool = Pool(toy_pool.lang, toy_pool.samples, quality=quality, embeddings=emb)
    idx = get_selector("deita", {"max_similarity": 0.9}).select(pool, 3)
    assert idx[:2].tolist() == [0, n - 1]  # the best, then the only sample far enough from it
    assert idx[2] == 1  # budget filled in score order


def test_ifd_orders_by_difficulty_and_drops_misaligned(toy_pool):
    from mdaq import Pool, get_selector

    n = len(toy_pool)
    ifd = np.linspace(0.2, 0.9, n)
    ifd[0], ifd[1] = 1.5, np.nan  # instruction does not help / unscorable
    pool = Pool(toy_pool.lang, toy_pool.samples, ifd=ifd)
    idx = get_selector("ifd").select(pool, n)
    assert idx[: n - 2].tolist() == list(range(n - 1, 1, -1))  # decreasing IFD among valid ones
    assert idx[n - 2 :].tolist() == [0, 1]  # dropped ones last: IFD 1.5, then NaN
    assert get_selector("ifd", {"max_ifd": float("inf")}).select(pool, 1).tolist() == [0]
