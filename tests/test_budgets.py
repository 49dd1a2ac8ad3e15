"""Multilingual budgets: hand-computed quotas, their invariants, and quota-enforced pooled selection."""

from __future__ import annotations

import numpy as np
import pytest

from mdaq import BaseSelector, Pool, Sample, get_selector
from mdaq.selectors.budgets import language_quotas, pooled_pool, pooled_report, select_pooled

COUNTS = {"de": 100, "fr": 50, "ja": 10}


# ---------------------------------------------------------------------------------------------- language_quotas
def test_equal_caps_small_language_and_redistributes():
    # 20 each, but ja has only 10: its 10 spare slots are split equally between de and fr
    assert language_quotas(COUNTS, 60, "equal") == {"de": 25, "fr": 25, "ja": 10}


def test_equal_redistributes_over_several_rounds():
    # 10 each -> a capped at 1, 9 spare -> b and c get 14.5 -> b capped at 3, c takes the rest
    assert language_quotas({"a": 1, "b": 3, "c": 100}, 30, "equal") == {"a": 1, "b": 3, "c": 26}


def test_proportional_largest_remainder():
    # exact shares 37.5, 18.75, 3.75 -> floors 37, 18, 3 (58); the two largest remainders (fr, ja) get +1
    assert language_quotas(COUNTS, 60, "proportional") == {"de": 37, "fr": 19, "ja": 4}


def test_temperature_two_is_square_root_weighting():
    # weights sqrt(n) = 10, 7.071, 3.162 -> exact shares 29.65, 20.97, 9.38 -> floors 29, 20, 9; +1 to fr and de
    assert language_quotas(COUNTS, 60, "temperature", temperature=2.0) == {"de": 30, "fr": 21, "ja": 9}


def test_temperature_limits():
    proportional = language_quotas(COUNTS, 60, "proportional")
    equal = language_quotas(COUNTS, 60, "equal")
    assert language_quotas(COUNTS, 60, "temperature", temperature=1.0) == proportional
    assert language_quotas(COUNTS, 60, "temperature", temperature=1e6) == equal
    assert language_quotas(COUNTS, 60, "temperature", temperature=float("inf")) == equal
    # T -> 0 gives everything to the largest pool, then (capped) to the next one; no overflow on the way
    assert language_quotas(COUNTS, 60, "temperature", temperature=1e-3) == {"de": 60, "fr": 0, "ja": 0}
    assert language_quotas(COUNTS, 155, "temperature", temperature=1e-3) == {"de": 100, "fr": 50, "ja": 5}


def test_ties_break_by_language_code_and_keys_are_sorted():
    # 10 / 3 = 3.33 each: the single extra slot goes to the smallest code, whatever the mapping's order
    got = language_quotas({"ja": 10, "fr": 10, "de": 10}, 10, "equal")
    assert got == {"de": 4, "fr": 3, "ja": 3} and list(got) == ["de", "fr", "ja"]
    assert language_quotas({"no": 5, "en": 5}, 1, "proportional") == {"en": 1, "no": 0}


def test_total_above_pool_and_empty_cases():
    assert language_quotas(COUNTS, 10_000, "equal") == COUNTS
    assert language_quotas(COUNTS, 0, "proportional") == {"de": 0, "fr": 0, "ja": 0}
    assert language_quotas({"de": 0, "fr": 4}, 3, "equal") == {"de": 0, "fr": 3}
    assert language_quotas({}, 5) == {}


@pytest.mark.parametrize("seed", range(20))
def test_quota_invariants_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    langs = [f"l{i:02d}" for i in range(int(rng.integers(1, 12)))]
    counts = {lang: int(rng.integers(0, 200)) * int(rng.random() > 0.15) for lang in langs}
    total = int(rng.integers(0, 1.2 * sum(counts.values()) + 2))
    cases = [("equal", 1.0), ("proportional", 1.0), ("temperature", float(rng.uniform(0.05, 20)))]
    for mode, temperature in cases:
        q = language_quotas(counts, total, mode, temperature)
        assert list(q) == sorted(counts), mode
        assert sum(q.values()) == min(total, sum(counts.values())), mode
        assert all(0 <= q[lang] <= counts[lang] for lang in langs), mode
    # equal: every language with room left is within one of the largest quota (the excess really was re-split)
    q = language_quotas(counts, total, "equal")
    top = max(q.values(), default=0)
    assert all(q[lang] >= top - 1 for lang in langs if q[lang] < counts[lang])


def test_quota_errors():
    with pytest.raises(ValueError, match="total"):
        language_quotas(COUNTS, -1)
    with pytest.raises(ValueError, match="total"):
        language_quotas(COUNTS, 2.5)
    with pytest.raises(ValueError, match="mode must be one of equal, proportional, temperature"):
        language_quotas(COUNTS, 10, "uniform")
    with pytest.raises(ValueError, match=r"counts\['fr'\]"):
        language_quotas({"de": 3, "fr": -1}, 2)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            language_quotas(COUNTS, 10, "temperature", temperature=bad)


# ------------------------------------------------------------------------------------------------ select_pooled
def _pools(quality_offset: dict[str, float] | None = None, dim: int = 8) -> dict[str, Pool]:
    """de 40, fr 20, ja 15 samples with random features; ``quality_offset`` shifts a language's scores."""
    rng = np.random.default_rng(0)
    pools = {}
    for lang, n in (("de", 40), ("fr", 20), ("ja", 15)):
        samples = [
            Sample.create(lang, f"{lang} instruction {k}", "", f"{lang} answer {k} " * (k + 1)) for k in range(n)
        ]
        emb = rng.normal(size=(n, dim))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        quality = rng.normal(size=n) + (quality_offset or {}).get(lang, 0.0)
        pools[lang] = Pool(lang, samples, quality=quality, embeddings=emb)
    return pools


def _check_valid(selected, pools, quotas):
    assert list(selected) == sorted(pools)
    for lang, idx in selected.items():
        assert idx.dtype == np.int64 and len(idx) == quotas[lang], lang
        assert len(np.unique(idx)) == len(idx) and (0 <= idx).all() and (idx < len(pools[lang])).all(), lang


def test_quality_topk_gives_low_quality_language_its_quota():
    pools = _pools({"ja": -10.0})  # every ja sample scores below every de/fr sample
    selected = select_pooled(get_selector("quality_topk"), pools, 30, "equal")
    _check_valid(selected, pools, {"de": 10, "fr": 10, "ja": 10})
    for lang, pool in pools.items():  # each language: its own top 10 by quality, best first
        np.testing.assert_array_equal(selected[lang], np.argsort(-pool.quality, kind="stable")[:10], err_msg=lang)


def test_proportional_mode_and_total_above_pool():
    pools = _pools()
    selected = select_pooled(get_selector("random"), pools, 30, "proportional")
    _check_valid(selected, pools, {"de": 16, "fr": 8, "ja": 6})  # 30 * 40/75, 30 * 20/75, 30 * 15/75
    everything = select_pooled(get_selector("quality_topk"), pools, 1000)
    _check_valid(everything, pools, {lang: len(p) for lang, p in pools.items()})
    nothing = select_pooled(get_selector("quality_topk"), pools, 0)
    _check_valid(nothing, pools, {lang: 0 for lang in pools})


def test_random_is_deterministic_and_seeded():
    pools = _pools()
    a = select_pooled(get_selector("random", random_state=3), pools, 21)
    b = select_pooled(get_selector("random", random_state=3), pools, 21)
    c = select_pooled(get_selector("random", random_state=4), pools, 21)
    _check_valid(a, pools, {"de": 7, "fr": 7, "ja": 7})
    for lang in pools:
        np.testing.assert_array_equal(a[lang], b[lang])
    assert any(not np.array_equal(a[lang], c[lang]) for lang in pools)


def test_mdaq_das_runs_on_the_joint_pool():
    pools = _pools({"fr": 3.0})
    selected = select_pooled(get_selector("mdaq_das"), pools, 24, "equal")
    _check_valid(selected, pools, {"de": 8, "fr": 8, "ja": 8})
    again = select_pooled(get_selector("mdaq_das"), pools, 24, "equal")
    assert all(np.array_equal(selected[lang], again[lang]) for lang in pools)


class _Spy(BaseSelector):
    """Ranks by quality and records every pool it is shown (languages and size)."""

    name = "spy"
    version = "1"
    requires = frozenset({"quality"})

    def __init__(self, *, random_state: int = 0):
        self.random_state = random_state
        self.seen: list[tuple[list[str], int, int]] = []

    def _select(self, pool, budget):
        self.seen.append((sorted({s.lang for s in pool.samples}), len(pool), budget))
        return np.lexsort((np.arange(len(pool)), -pool.quality))[:budget]


def test_top_up_rounds_see_only_unfilled_languages():
    pools = _pools({"de": 20.0, "fr": 10.0})  # ranking: all de, then all fr, then all ja
    spy = _Spy()
    selected = select_pooled(spy, pools, 30, "equal")
    _check_valid(selected, pools, {"de": 10, "fr": 10, "ja": 10})
    # round 1: the joint pool, 30 slots (30 de ranked first, only 10 kept); round 2: fr + ja minus nothing taken,
    # 20 slots (fr's 20 first: 10 kept, ja gets none); round 3: ja alone, 10 slots
    assert spy.seen == [(["de", "fr", "ja"], 75, 30), (["fr", "ja"], 35, 20), (["ja"], 15, 10)]


def test_full_returns_everything():
    pools = _pools()
    selected = select_pooled(get_selector("full"), pools, 5)
    for lang, pool in pools.items():
        np.testing.assert_array_equal(selected[lang], np.arange(len(pool)))


def test_pooled_pool_maps_rows_back():
    pools = _pools()
    joint, lang_id, local = pooled_pool(pools)
    assert joint.lang == "pooled" and len(joint) == 75 and joint.embeddings.shape == (75, 8)
    assert np.bincount(lang_id).tolist() == [40, 20, 15]
    row = 40 + 20 + 3  # ja's fourth sample
    assert lang_id[row] == 2 and local[row] == 3 and joint.samples[row] is pools["ja"].samples[3]
    assert joint.quality[row] == pools["ja"].quality[3]


def test_mismatched_features_are_named():
    pools = _pools()
    pools["fr"] = Pool("fr", pools["fr"].samples, quality=None, embeddings=pools["fr"].embeddings)
    with pytest.raises(ValueError, match="quality: present for de, ja, missing for fr"):
        select_pooled(get_selector("random"), pools, 10)
    other = _pools(dim=4)
    pools = {**_pools(), "ja": other["ja"]}
    with pytest.raises(ValueError, match="different dimensions"):
        select_pooled(get_selector("random"), pools, 10)
    bare = {lang: Pool(lang, p.samples) for lang, p in _pools().items()}
    with pytest.raises(ValueError, match="requires pool.quality"):
        select_pooled(get_selector("quality_topk"), bare, 10)
    with pytest.raises(ValueError, match="pools\\['de'\\] holds a pool for language 'fr'"):
        select_pooled(get_selector("random"), {"de": bare["fr"], "ja": bare["ja"]}, 10)


def test_pooled_report():
    pools = _pools()
    selected = select_pooled(get_selector("random"), pools, 30, "proportional")
    report = pooled_report(selected, pools)
    assert report["total"] == 30
    assert report["languages"]["de"] == {"n_selected": 16, "n_pool": 40, "share": 16 / 30, "pool_fraction": 0.4}
    assert sum(v["share"] for v in report["languages"].values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="different languages: ja"):
        pooled_report({k: v for k, v in selected.items() if k != "ja"}, pools)
