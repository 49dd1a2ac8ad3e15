"""Selection streamed over feature blocks (mdaq.selectors.streamed) equals the in-memory selectors, in bounded
memory, and refuses what it cannot do with one clear line."""

from __future__ import annotations

import weakref

import numpy as np
import pytest

from mdaq import DataError, Pool, Sample
from mdaq.selectors import get_selector, selection_parts
from mdaq.selectors.kmeans_scale import KMeansSettings
from mdaq.selectors.streamed import check_streamable, run_streamed, select_streamed
from mdaq.shards.features import FeatureBlock

N = 1200


@pytest.fixture(scope="module")
def pool() -> Pool:
    """N samples with clustered embeddings (30 planted centres, well separated) and tied-in-places scores."""
    rng = np.random.default_rng(7)
    centres = 6 * rng.normal(size=(30, 16)).astype(np.float32)
    x = (centres[rng.integers(0, 30, N)] + rng.normal(size=(N, 16))).astype(np.float32)
    quality = np.round(rng.normal(size=N), 1).astype(np.float32)  # rounded: ties, broken by pool order
    samples = [Sample.create("de", f"Frage {i}", "", f"Antwort {i}", source="test") for i in range(N)]
    return Pool("de", samples, quality=quality, embeddings=x)


def blocks_of(pool: Pool, block: int, live: list | None = None):
    """A BlockFactory over ``pool``'s features (fresh copies per block, as a reader would make); with ``live``, the
    number of blocks' embeddings alive is recorded as each block is made."""
    ids = np.array([s.id for s in pool.samples])
    alive: set[int] = set()

    def factory():
        for start in range(0, len(ids), block):
            emb = pool.embeddings[start : start + block].copy()
            alive.add(id(emb))
            weakref.finalize(emb, alive.discard, id(emb))
            if live is not None:
                live.append(len(alive))
            yield FeatureBlock(ids[start : start + block], pool.quality[start : start + block].copy(), emb)

    return factory


def in_memory(pool: Pool, method: str, params, budget: int, seed: int = 3) -> list[str]:
    return [pool.samples[i].id for i in get_selector(method, params, seed).select(pool, budget)]


METHODS = [
    ("random", None),
    ("quality_topk", None),
    ("full", None),
    ("mdaq_das", None),
    ("mdaq_das", {"n_clusters": "sqrt", "n_quality_ratio": 3}),
    ("car", None),
    ("car", {"n_clusters": 40, "n_per_cluster": 2}),
    ("mmr", None),
    ("kcenter", None),
    ("deita", {"max_similarity": 0.5}),
    ("kmeans_diverse", None),
]


@pytest.mark.parametrize(("method", "params"), METHODS)
def test_streamed_equals_in_memory(pool, method, params):
    expected = in_memory(pool, method, params, 90)
    for block in (97, N):
        assert select_streamed(method, params, blocks_of(pool, block), 90, seed=3) == expected


@pytest.mark.parametrize("method", ["mdaq_das", "car"])
def test_streamed_faiss_past_the_gather_limit_equals_in_memory_faiss(pool, method):
    params = {"engine": "faiss"}
    live: list[int] = []
    run = run_streamed(method, params, blocks_of(pool, 100, live), 90, 3, max_in_memory_rows=150)
    assert run.engine == "faiss" and run.n_pool == N
    assert run.ids == in_memory(pool, method, params, 90)
    assert len(live) == 2 * 12 and max(live) <= 2  # two passes, never more than the current block and the last
    if method == "mdaq_das":
        selector = get_selector(method, params, 3)
        selector.select(pool, 90)
        assert run.n_clusters == 90 and np.array_equal(run.parts, selection_parts(selector, 90))


def test_streamed_kmeans_settings_reach_faiss(pool):
    params = {"engine": "faiss"}
    a = run_streamed("car", params, blocks_of(pool, 100), 60, 0, max_in_memory_rows=0)
    b = run_streamed("car", params, blocks_of(pool, 100), 60, 0, max_in_memory_rows=0, kmeans=KMeansSettings(niter=1))
    c = run_streamed("car", params, blocks_of(pool, 100), 60, 0, kmeans=KMeansSettings(niter=1))  # gathered rows
    assert a.ids == in_memory(pool, "car", params, 60, seed=0) and b.ids == c.ids


@pytest.mark.parametrize("budget", [0, 1, N, N + 50])
def test_streamed_budget_edges(pool, budget):
    for method in ("mdaq_das", "quality_topk", "random"):
        ids = select_streamed(method, None, blocks_of(pool, 500), budget, seed=1)
        assert ids == in_memory(pool, method, None, budget, seed=1) and len(ids) == min(budget, N)
    with pytest.raises(ValueError, match="budget must be a non-negative integer, got -1"):
        select_streamed("random", None, blocks_of(pool, 500), -1)


def test_empty_stream():
    def nothing():
        return iter(())

    for method in ("random", "mdaq_das", "car", "mmr"):
        assert select_streamed(method, None, nothing, 10) == []


@pytest.mark.parametrize("method", ["mmr", "kcenter", "deita", "kmeans_diverse"])
def test_pairwise_methods_refuse_a_pool_above_the_limit(pool, method):
    with pytest.raises(ValueError) as e:
        select_streamed(method, None, blocks_of(pool, 100), 10, max_in_memory_rows=1000)
    msg = str(e.value)
    assert msg.startswith(f"{method} needs all embeddings in memory") and "\n" not in msg
    assert "has 1,200 rows, above the limit of 1,000 (max_in_memory_rows)" in msg


def test_sklearn_kmeans_refuses_a_pool_above_the_limit(pool):
    with pytest.raises(ValueError, match="mdaq_das: k-means by scikit-learn needs all embeddings in memory: the "):
        select_streamed("mdaq_das", {"engine": "sklearn"}, blocks_of(pool, 100), 10, max_in_memory_rows=1000)


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("longest", "longest reads the samples' texts, which feature blocks"),
        ("oracle_revised", "oracle_revised reads the samples' texts"),
        ("ifd", r"ifd needs ifd, which feature blocks \(id, quality, embedding\) lack"),
    ],
)
def test_methods_that_need_texts_or_other_features_are_refused(pool, method, message):
    with pytest.raises(ValueError, match=message):
        select_streamed(method, None, blocks_of(pool, 100), 10)


REFUSED = [
    ("longest", None),
    ("oracle_raw", None),
    ("ifd", None),
    ("mmr", None),
    ("kcenter", None),
    ("mdaq_das", {"engine": "sklearn"}),
]


@pytest.mark.parametrize(("method", "params"), REFUSED)
def test_check_streamable_refuses_up_front_what_run_streamed_refuses(pool, method, params):
    """Before a feature is computed (`mdaq select --engine`), with run_streamed's own message; from the size alone."""
    with pytest.raises(ValueError) as late:
        select_streamed(method, params, blocks_of(pool, 400), 10, max_in_memory_rows=N - 1)
    with pytest.raises(ValueError) as early:
        check_streamable(method, params, N, max_in_memory_rows=N - 1)
    assert str(early.value) == str(late.value)


@pytest.mark.parametrize(("method", "params"), [*METHODS, ("mdaq_das", {"engine": "faiss"})])
def test_check_streamable_lets_through_what_run_streamed_runs(method, params):
    check_streamable(method, params, N, max_in_memory_rows=N)
    if method in ("random", "quality_topk", "full", "mdaq_das", "car"):
        check_streamable(method, params, 10**8)  # scores only, or faiss k-means (auto picks it at this size)


def test_bad_blocks_name_the_row_and_field(pool):
    ids = np.array([s.id for s in pool.samples[:6]])
    emb = pool.embeddings[:6].copy()
    quality = pool.quality[:6].copy()
    quality[4] = np.nan

    def nan_score():
        yield FeatureBlock(ids[:3], pool.quality[:3], emb[:3])
        yield FeatureBlock(ids[3:], quality[3:], emb[3:])

    with pytest.raises(DataError, match=rf"features/de, record 4 \(id {ids[4]}\), field 'quality': holds nan"):
        select_streamed("quality_topk", None, nan_score, 2, source="features/de")

    def duplicate():
        yield FeatureBlock(ids[:3], pool.quality[:3], emb[:3])
        yield FeatureBlock(ids[1:2], pool.quality[:1], emb[:1])

    with pytest.raises(DataError, match=rf"record 3, field 'id': duplicate id {ids[1]} \(first in row 1\)"):
        select_streamed("random", None, duplicate, 2)

    def narrow():
        yield FeatureBlock(ids[:3], pool.quality[:3], emb[:3])
        yield FeatureBlock(ids[3:], pool.quality[3:6], emb[3:, :8])

    with pytest.raises(DataError, match="record 3, field 'embedding': 8 columns, earlier rows 16"):
        select_streamed("mdaq_das", None, narrow, 2)


def test_a_stream_that_changes_between_passes_is_refused(pool):
    calls = []

    def shrinking():
        calls.append(1)
        stop = N if len(calls) == 1 else N - 100
        return blocks_of(Pool("de", pool.samples[:stop], pool.quality[:stop], pool.embeddings[:stop]), 100)()

    with pytest.raises(ValueError, match="1200 rows in the first pass and 1100 in the second"):
        select_streamed("mdaq_das", {"engine": "faiss"}, shrinking, 10, max_in_memory_rows=0)


def test_ifd_streams_from_blocks_that_carry_it_and_equals_the_in_memory_selector(pool):
    """`ifd` reads only ids and IFD: from IFD-only blocks (no QSM score, no embedding) it picks what the in-memory
    selector picks, NaN (an unscorable sample) and IFD >= max_ifd ranked last, as there."""
    rng = np.random.default_rng(5)
    ifd = rng.uniform(0.3, 1.3, N).astype(np.float32)
    ifd[[3, 50, 700]] = np.nan
    ids = np.array([s.id for s in pool.samples])
    losses = np.ones(N, dtype=np.float32)

    def factory():
        for start in range(0, N, 250):
            part = slice(start, start + 250)
            yield FeatureBlock(
                ids[part], ifd=ifd[part], loss_conditional=losses[part], loss_unconditional=losses[part]
            )

    in_mem = Pool("de", pool.samples, ifd=ifd)
    for budget in (10, N):
        want = in_memory(in_mem, "ifd", None, budget)
        got = select_streamed("ifd", None, factory, budget, 3, features=frozenset({"ifd"}))
        assert got == want
    assert set(select_streamed("ifd", None, factory, N, 3, features=frozenset({"ifd"}))[-3:]) == set(ids[[3, 50, 700]])
    check_streamable("ifd", None, N, features=frozenset({"ifd"}))  # lets it through
    with pytest.raises(ValueError, match=r"quality_topk needs quality, which feature blocks \(id, ifd\) lack"):
        select_streamed("quality_topk", None, factory, 10, features=frozenset({"ifd"}))
    with pytest.raises(ValueError, match=r"ifd needs ifd, .*lack; compute the feature shards with an IFD model"):
        check_streamable("ifd", None, N)
