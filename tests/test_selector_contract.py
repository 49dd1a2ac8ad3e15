"""One contract, run over every registered selector (scikit-learn's check_estimator style)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
from sklearn.base import clone

from mdaq import FEATURES, SELECTORS, DataError, Pool, get_selector


def _labelled(samples):
    """The samples with the evaluation label the controls (``role = "control"``) read: every other one revised."""
    return [dataclasses.replace(s, meta={**s.meta, "is_revised": i % 2 == 0}) for i, s in enumerate(samples)]


def _pool_with_features(pool: Pool) -> Pool:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(pool), 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ifd = rng.uniform(0.3, 1.2, size=len(pool))
    samples = _labelled(pool.samples)
    return Pool(pool.lang, samples, quality=rng.normal(size=len(pool)), embeddings=emb, ifd=ifd)


@pytest.mark.parametrize("name", sorted(SELECTORS.names()))
@pytest.mark.parametrize("budget", [0, 1, 4, 10, 50])
def test_selector_returns_valid_indices(name, budget, toy_pool):
    pool = _pool_with_features(toy_pool)
    sel = get_selector(name)
    idx = sel.select(pool, budget)
    expected = len(pool) if not sel.uses_budget else min(budget, len(pool))
    assert idx.dtype == np.int64 and len(idx) == expected
    assert len(set(idx.tolist())) == len(idx) and all(0 <= i < len(pool) for i in idx)


@pytest.mark.parametrize("name", sorted(SELECTORS.names()))
def test_selector_is_deterministic_and_does_not_mutate(name, toy_pool):
    pool = _pool_with_features(toy_pool)
    before = copy.deepcopy(pool)
    a = get_selector(name, random_state=1).select(pool, 5)
    b = get_selector(name, random_state=1).select(pool, 5)
    np.testing.assert_array_equal(a, b)
    assert pool.samples == before.samples
    np.testing.assert_array_equal(pool.quality, before.quality)


@pytest.mark.parametrize("name", sorted(SELECTORS.names()))
def test_selector_features(name, toy_pool):
    cls = SELECTORS.get(name)
    bare = Pool(toy_pool.lang, toy_pool.samples)
    if cls.role == "control":  # reads the label, which only `prepare`'s MIDB pools carry
        with pytest.raises(ValueError, match="evaluation label"):
            cls().select(bare, 3)
        bare = Pool(toy_pool.lang, _labelled(toy_pool.samples))
    if cls.requires:
        with pytest.raises(ValueError, match="requires pool"):
            cls().select(bare, 3)
    else:
        assert len(cls().select(bare, 3)) in (3, len(bare))


@pytest.mark.parametrize("name", sorted(SELECTORS.names()))
def test_selector_manners(name):
    cls = SELECTORS.get(name)
    sel = cls(random_state=7)
    assert clone(sel).get_params() == sel.get_params()
    assert cls.__doc__ and cls.version and cls.name == name
    assert cls.requires <= FEATURES


def test_negative_budget_and_unknown_params(toy_pool):
    with pytest.raises(ValueError, match="budget"):
        get_selector("random").select(toy_pool, -1)
    with pytest.raises(ValueError, match="selectors.random"):
        get_selector("random", {"bogus": 1})
    with pytest.raises(KeyError, match="valid: car, deita, full"):
        get_selector("nope")


def test_random_differs_by_seed(toy_pool):
    a = get_selector("random", random_state=0).select(toy_pool, 5)
    b = get_selector("random", random_state=1).select(toy_pool, 5)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize(("name", "revised"), [("oracle_revised", True), ("oracle_raw", False)])
def test_controls_pick_one_label_then_fill(name, revised, toy_pool):
    pool = Pool(toy_pool.lang, _labelled(toy_pool.samples))  # 5 revised, 5 raw
    labels = [bool(s.meta["is_revised"]) for s in pool.samples]
    idx = get_selector(name, random_state=3).select(pool, 4)
    assert [labels[i] for i in idx] == [revised] * 4
    full = get_selector(name, random_state=3).select(pool, 7)  # more than there are: filled with the other label
    assert [labels[i] for i in full] == [revised] * 5 + [not revised] * 2
    assert SELECTORS.get(name).role == "control"


@pytest.mark.parametrize("name", sorted(SELECTORS.names()))
@pytest.mark.parametrize("bad", ["abc", [1], float("nan"), None])
def test_selector_validates_its_own_parameters(name, bad, toy_pool):
    """The finding: `{"random_state": "abc"}`, `{"n_clusters": "abc"}`, `{"lam": "x"}` ended in TypeErrors deep in
    numpy or scikit-learn; every parameter of every selector is now checked against its `__init__` annotation and
    the selector's own ranges, naming the key, both by get_selector and (for a directly built one) by select()."""
    for key in SELECTORS.get(name)().get_params():
        with pytest.raises(DataError, match=rf"field 'selectors\.{name}\.{key}'"):
            get_selector(name, {key: bad})
        with pytest.raises(DataError, match=rf"field 'selectors\.{name}\.{key}'"):
            SELECTORS.get(name)(**{key: bad}).select(toy_pool, 3)


def test_selector_params_must_be_a_mapping():
    with pytest.raises(DataError, match=r"field 'selectors.random': expected a mapping .* got list"):
        get_selector("random", [1])
    with pytest.raises(DataError, match=r"--params, field 'selectors.random.random_state': .* is negative"):
        get_selector("random", {"random_state": -1}, source="--params")


@pytest.mark.parametrize(
    "name", sorted(n for n in SELECTORS.names() if SELECTORS.get(n).requires & {"quality", "embeddings"})
)
@pytest.mark.parametrize("feature", ["quality", "embeddings"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_refused_naming_the_row(name, feature, value, toy_pool):
    """The finding: NaN/inf QSM scores or embeddings were ranked silently (quality_topk, kcenter)."""
    if feature not in SELECTORS.get(name).requires:
        pytest.skip(f"{name} does not read {feature}")
    pool = _pool_with_features(toy_pool)
    arr = getattr(pool, feature).copy()
    arr[3] = value
    pool = dataclasses.replace(pool, **{feature: arr})
    with pytest.raises(
        ValueError, match=rf"{name}: pool 'de', {feature} row 3 holds -?(nan|inf) \(1 row is not finite\)"
    ):
        get_selector(name).select(pool, 4)


def test_unscorable_ifd_is_still_allowed(toy_pool):
    pool = _pool_with_features(toy_pool)
    ifd = pool.ifd.copy()
    ifd[2] = np.nan  # an empty response: IFD ranks it last
    assert 2 not in get_selector("ifd").select(dataclasses.replace(pool, ifd=ifd), 4)
