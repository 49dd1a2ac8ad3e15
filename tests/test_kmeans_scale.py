"""k-means at scale (mdaq.selectors.kmeans_scale): the seeded sample, faiss training, streamed assignment, engines."""

from __future__ import annotations

import weakref
from types import SimpleNamespace

import numpy as np
import pytest

from mdaq import DataError
from mdaq.selectors import get_selector
from mdaq.selectors import kmeans_scale as ks
from mdaq.selectors.algorithms import cluster_labels


def clustered(n: int, d: int = 16, n_centres: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows around well-separated centres (no row near a tie between two centroids), and each row's centre."""
    rng = np.random.default_rng(seed)
    centres = 6 * rng.normal(size=(n_centres, d)).astype(np.float32)
    truth = rng.integers(0, n_centres, n)
    return (centres[truth] + rng.normal(size=(n, d))).astype(np.float32), truth


def factory(x: np.ndarray, block: int, live: list | None = None):
    """A block factory over the rows of ``x``; with ``live``, records how many blocks' embeddings are alive as each
    new block is made."""
    alive: set[int] = set()

    def blocks():
        for start in range(0, len(x), block):
            emb = x[start : start + block].copy()
            key = id(emb)
            alive.add(key)
            weakref.finalize(emb, alive.discard, key)
            if live is not None:
                live.append(len(alive))
            yield SimpleNamespace(embeddings=emb)

    return blocks


@pytest.mark.parametrize("capacity", [0, 1, 64, 500, 700])
def test_row_sampler_is_the_bottom_sample_whatever_the_block_cut(capacity):
    x, _ = clustered(500, d=4)
    for block in (1, 7, 128, 500):
        sampler = ks.RowSampler(capacity, random_state=3)
        for start in range(0, len(x), block):
            sampler.add(x[start : start + block])
        assert sampler.n_seen == 500
        for size in {0, min(capacity, 40), min(capacity, 500)}:
            rows, vecs = sampler.take(size)
            expected = ks.sample_rows(500, size, random_state=3)
            assert np.array_equal(rows, expected) and np.array_equal(vecs, x[expected])
    with pytest.raises(ValueError, match="sampler keeps"):
        ks.RowSampler(10).take(11)


def test_row_sampler_refuses_a_changing_width():
    sampler = ks.RowSampler(10)
    sampler.add(np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="rows 3.. have 5 columns, earlier rows 4"):
        sampler.add(np.zeros((3, 5), dtype=np.float32))


def test_sample_size_rules():
    assert ks.sample_size(1_000_000, 1000) == 1000 * ks.POINTS_PER_CLUSTER
    assert ks.sample_size(1_000_000, 7000) == ks.MAX_SAMPLE  # capped
    assert ks.sample_size(500, 100) == 500  # never more than the pool
    assert ks.sample_size(10_000, 300, points_per_cluster=1, max_sample=1000) == 300  # at least k
    with pytest.raises(ValueError, match="needs at least 300 training rows; max_sample is 100"):
        ks.sample_size(10_000, 300, max_sample=100)


def test_faiss_kmeans_is_deterministic_for_a_seed_and_finds_planted_clusters():
    from sklearn.metrics import adjusted_rand_score

    x, truth = clustered(4000)
    a = ks.kmeans_labels(x, 20, random_state=5)
    b = ks.kmeans_labels(x, 20, random_state=5)
    assert a.dtype == np.int64 and np.array_equal(a, b) and set(np.unique(a)) <= set(range(20))
    # AFK-MC2 seeding (the default) recovers the planted clusters: 0.94-1.0 per seed, where faiss's random
    # initial centroids give 0.59-0.79 (two centroids start in one cluster and a planted pair stays merged)
    ari = [adjusted_rand_score(truth, ks.kmeans_labels(x, 20, random_state=s)) for s in range(4)]
    assert np.mean(ari) > 0.85
    c1 = ks.train_centroids(x[:1000], 20, random_state=0)
    c2 = ks.train_centroids(x[:1000], 20, random_state=1)
    assert c1.shape == (20, 16) and not np.array_equal(c1, c2)  # the seed picks the initial centroids
    with pytest.raises(ValueError, match="30 clusters on 20 training rows"):
        ks.train_centroids(x[:20], 30)


def test_sample_trained_kmeans_uses_the_sample_only():
    x, _ = clustered(3000)
    settings = ks.KMeansSettings(points_per_cluster=50)
    size = settings.sample_size(3000, 10)
    assert size == 500
    rows = ks.sample_rows(3000, size, random_state=2)
    centroids = ks.train_centroids(x[rows], 10, random_state=2)
    labels = ks.kmeans_labels(x, 10, random_state=2, settings=settings)
    assert np.array_equal(labels, ks.assign_blocks([x], centroids))


@pytest.mark.parametrize("block", [19, 512, 4000])  # 19: under faiss's BLAS threshold (20 rows)
def test_streamed_assignment_equals_one_shot(block):
    x, _ = clustered(4000)
    settings = ks.KMeansSettings(points_per_cluster=40)
    one_shot = ks.kmeans_labels(x, 20, random_state=0, settings=settings)
    streamed = ks.stream_kmeans(factory(x, block), 20, random_state=0, settings=settings)
    assert np.array_equal(streamed, one_shot)


def test_streamed_kmeans_holds_one_block_at_a_time():
    x, _ = clustered(6000)
    live: list[int] = []
    ks.stream_kmeans(factory(x, 250, live), 20, random_state=0)
    assert len(live) == 2 * 24  # two passes
    assert max(live) <= 2  # the block being made and the one the loop still names; none is kept


def test_spherical_kmeans_assigns_by_inner_product():
    x, _ = clustered(2000)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = ks.kmeans_labels(x, 20, random_state=0, settings=ks.KMeansSettings(spherical=True))
    centroids = ks.train_centroids(x[ks.sample_rows(2000, 2000, 0)], 20, spherical=True)
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-5)
    assert np.array_equal(labels, np.argmax(x @ centroids.T, axis=1))


def test_engine_auto_threshold(monkeypatch):
    assert ks.resolve_engine("auto", ks.FAISS_MIN_ROWS - 1) == "sklearn"
    assert ks.resolve_engine("auto", ks.FAISS_MIN_ROWS) == "faiss"
    assert ks.resolve_engine("sklearn", 10**9) == "sklearn" and ks.resolve_engine("faiss", 5) == "faiss"
    with pytest.raises(ValueError, match="engine must be one of auto, sklearn, faiss, got 'gpu'"):
        ks.resolve_engine("gpu", 5)
    x, _ = clustered(600)
    sk = cluster_labels(x, 12, random_state=0, engine="sklearn")
    assert np.array_equal(cluster_labels(x, 12, random_state=0), sk)  # auto below the threshold: scikit-learn
    monkeypatch.setattr(ks, "FAISS_MIN_ROWS", 500)
    assert np.array_equal(cluster_labels(x, 12, random_state=0), ks.kmeans_labels(x, 12, random_state=0))


@pytest.mark.parametrize("method", ["mdaq_das", "car", "kmeans_diverse"])
def test_selectors_check_their_engine(method):
    assert get_selector(method, {"engine": "faiss"}).engine == "faiss"
    with pytest.raises(DataError, match=rf"selectors\.{method}\.engine.*'gpu' is not a k-means engine"):
        get_selector(method, {"engine": "gpu"})
