"""DAS's cluster-count rule and its parts (quality / diversity / fill): in the selector, the selection rows, the
pooled path and the intrinsic table; and a coverage partition that no selector reads."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from mdaq import SELECTORS, Pool, Sample, get_selector
from mdaq.evaluation.intrinsic import coverage_labels, intrinsic_report, part_counts, selection_metrics
from mdaq.io import read_jsonl
from mdaq.selectors import read_selection_parts, selection_parts, write_selection
from mdaq.selectors.algorithms import cluster_labels, das_n_clusters, das_select, default_n_clusters
from mdaq.selectors.budgets import select_pooled
from mdaq.selectors.runner import select_samples


def _random_pool(n: int, seed: int, lang: str = "de", d: int = 16) -> Pool:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, d)).astype(np.float32)
    samples = [Sample.create(lang, f"instruction {seed} {i}", "", f"response {i}") for i in range(n)]
    return Pool(lang, samples, quality=rng.normal(size=n), embeddings=emb)


def _covered_pool() -> Pool:
    """80 samples in 6 far-apart blobs (blob = i % 6), quality falling with the index: the top 17 by quality
    (indices 0..16) already touch every blob."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 8)) * 50
    emb = centres[np.arange(80) % 6] + rng.normal(size=(80, 8))
    samples = [Sample.create("de", f"i{i}", "", f"o{i}") for i in range(80)]
    return Pool("de", samples, quality=-np.arange(80.0), embeddings=emb.astype(np.float32))


@pytest.mark.parametrize("seed", range(5))
def test_default_rule_makes_every_diversity_pick(seed):
    pool = _random_pool(80, seed)
    sel = get_selector("mdaq_das", random_state=seed)
    idx = sel.select(pool, 20)
    assert sel.parts_ == {
        "n_clusters": 20,
        "n_quality": 17,
        "n_diversity_requested": 3,
        "n_diversity_made": 3,
        "n_fill": 0,
    }
    assert sel.part_labels_.tolist() == ["quality"] * 17 + ["diversity"] * 3
    labels = cluster_labels(pool.embeddings, 20, random_state=seed)  # the clusters the selector used
    div = labels[idx[17:]]
    assert len(set(div)) == 3 and not set(div) & set(labels[idx[:17]])  # each from its own uncovered cluster


def test_default_rule_at_the_paper_like_size():
    sel = get_selector("mdaq_das")
    sel.select(_random_pool(794, 0, d=32), 112)
    assert sel.parts_["n_clusters"] == 112 and sel.parts_["n_quality"] == 96
    assert sel.parts_["n_diversity_made"] == sel.parts_["n_diversity_requested"] == 16 and sel.parts_["n_fill"] == 0


def test_sqrt_rule_reports_the_shortfall():
    pool = _covered_pool()
    sel = get_selector("mdaq_das", {"n_clusters": "sqrt"})
    idx = sel.select(pool, 20)
    assert sel.parts_["n_clusters"] == default_n_clusters(80) == 6
    assert sel.parts_["n_diversity_made"] < sel.parts_["n_diversity_requested"] == 3
    assert sel.parts_["n_diversity_made"] + sel.parts_["n_fill"] == 3
    assert sel.part_labels_[-sel.parts_["n_fill"] :].tolist() == ["fill"] * sel.parts_["n_fill"]
    assert sorted(idx.tolist()) == list(range(20))  # the top 20 by quality: what quality_topk picks
    default = get_selector("mdaq_das")
    default.select(pool, 20)
    assert default.parts_["n_diversity_made"] == 3  # the same pool under the default rule


def test_n_clusters_is_validated():
    pool = _random_pool(30, 0)
    for bad in (0, -2, "auto"):
        with pytest.raises(
            ValueError, match=r"selectors\.mdaq_das\.n_clusters': n_clusters must be .*'budget'.*'sqrt'"
        ):
            get_selector("mdaq_das", {"n_clusters": bad})
        with pytest.raises(ValueError, match=r"selectors\.mdaq_das\.n_clusters'"):  # built directly: select() checks
            SELECTORS.get("mdaq_das")(n_clusters=bad).select(pool, 7)
    for bad in (True, 2.5):
        with pytest.raises(ValueError, match=r"selectors\.mdaq_das\.n_clusters': expected an int or a str"):
            get_selector("mdaq_das", {"n_clusters": bad})
    sel = get_selector("mdaq_das", {"n_clusters": 4})
    sel.select(pool, 7)
    assert sel.parts_["n_clusters"] == 4
    assert das_n_clusters("budget", 30, 7) == 7 and das_n_clusters("sqrt", 30, 7) == 3
    assert das_n_clusters(500, 30, 7) == 30  # clipped to the pool


def test_das_select_parts_and_the_plain_call_agree():
    rng = np.random.default_rng(3)
    quality, labels = rng.normal(size=200), rng.integers(0, 12, size=200)
    for n_q, n_d in ((30, 5), (10, 40), (0, 3), (200, 0)):
        idx, parts = das_select(quality, labels, n_q, n_d, return_parts=True)
        np.testing.assert_array_equal(idx, das_select(quality, labels, n_q, n_d))
        assert len(parts) == len(idx) and (parts[: min(n_q, 200)] == "quality").all()
        made, fill = int((parts == "diversity").sum()), int((parts == "fill").sum())
        assert made + fill == min(n_d, 200 - min(n_q, 200))  # the fill takes exactly the missing diversity slots
        assert len(set(labels[idx[parts == "diversity"]])) == made  # one per cluster
    assert selection_parts(get_selector("random"), 3) is None


def test_selection_rows_carry_their_part(toy_samples):
    rng = np.random.default_rng(0)
    n = len(toy_samples)
    features = {"quality": rng.normal(size=n), "embeddings": rng.normal(size=(n, 6)).astype(np.float32)}
    rows = select_samples(toy_samples, "mdaq_das", 7, features=features)
    for lang in ("de", "ja", "no"):
        assert [r["part"] for r in rows if r["lang"] == lang] == ["quality"] * 6 + ["diversity"]
    assert {r["part"] for r in select_samples(toy_samples, "random", 3, features=features)} == {"selected"}
    pooled = select_samples(toy_samples, "mdaq_das", 14, features=features, pooled=True)
    assert len(pooled) == 14 and {r["part"] for r in pooled} <= {"quality", "diversity", "fill"}


def test_pooled_parts_align_with_the_indices():
    pools = {lang: _random_pool(40, k, lang) for k, lang in enumerate(("de", "fr", "ja"))}
    sel = get_selector("mdaq_das")
    picked, parts = select_pooled(sel, pools, 30, "equal", return_parts=True)
    again = select_pooled(get_selector("mdaq_das"), pools, 30, "equal")
    for lang in pools:
        np.testing.assert_array_equal(picked[lang], again[lang])  # return_parts changes nothing else
        assert len(parts[lang]) == len(picked[lang]) == 10
    labels = np.concatenate(list(parts.values()))
    assert (labels == "diversity").sum() >= 1 and set(labels) <= {"quality", "diversity", "fill"}
    _, none = select_pooled(get_selector("random"), pools, 30, return_parts=True)
    assert all(v is None for v in none.values())


def test_selection_file_parts_round_trip(tmp_path):
    pool = _random_pool(80, 0)
    sel = get_selector("mdaq_das")
    idx = sel.select(pool, 20)
    write_selection(tmp_path / "das.jsonl", pool, idx, "mdaq_das", parts=selection_parts(sel, len(idx)))
    assert read_selection_parts(tmp_path / "das.jsonl") == sel.part_labels_.tolist()
    write_selection(tmp_path / "plain.jsonl", pool, idx, "random")
    assert "part" not in read_jsonl(tmp_path / "plain.jsonl")[0]  # unlabelled files keep their old content
    assert read_selection_parts(tmp_path / "plain.jsonl") == ["selected"] * 20
    with pytest.raises(ValueError, match="2 part labels for 20 indices"):
        write_selection(tmp_path / "bad.jsonl", pool, idx, "m", parts=["quality", "fill"])


def test_intrinsic_table_reports_the_parts(tmp_path):
    pool = _random_pool(80, 0)
    for method, params in (("mdaq_das", {}), ("sqrt", {"n_clusters": "sqrt"})):
        sel = get_selector("mdaq_das", params)
        idx = sel.select(pool, 20)
        write_selection(tmp_path / method / "de.jsonl", pool, idx, method, parts=selection_parts(sel, len(idx)))
    write_selection(tmp_path / "random" / "de.jsonl", pool, get_selector("random").select(pool, 20), "random")
    table, _ = intrinsic_report({"de": pool}, ["mdaq_das", "sqrt", "random"], {"per_language": tmp_path})
    value = table.set_index(["method", "metric"])["value"]
    assert value[("mdaq_das", "n_diversity_requested")] == value[("mdaq_das", "n_diversity_made")] == 3
    assert value[("mdaq_das", "n_fill")] == 0
    assert value[("sqrt", "n_diversity_made")] + value[("sqrt", "n_fill")] == 3
    for metric in ("n_diversity_requested", "n_diversity_made", "n_fill"):
        assert math.isnan(value[("random", metric)])
    assert part_counts(["quality", "diversity", "fill", "fill"]) == {
        "n_diversity_requested": 3.0,
        "n_diversity_made": 1.0,
        "n_fill": 2.0,
    }
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "de.jsonl").write_text(f'{{"id": "{pool.samples[0].id}", "part": "extra"}}\n')
    with pytest.raises(ValueError, match=r"odd/de\.jsonl: unknown part labels \['extra'\]"):
        intrinsic_report({"de": pool}, ["odd"], {"per_language": tmp_path})


def _topical_pool() -> Pool:
    """80 samples: the text comes from one of 12 word lists (topic = i % 12), the embeddings are independent
    noise, and quality is highest in topics 0-2: a quality-led selection stays within a few topics."""
    rng = np.random.default_rng(5)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = [["".join(rng.choice(letters, 6)) for _ in range(8)] for _ in range(12)]
    topic = np.arange(80) % 12
    samples = [
        Sample.create("de", " ".join(rng.choice(vocab[t], 4)), "", " ".join(rng.choice(vocab[t], 8))) for t in topic
    ]
    quality = np.where(topic < 3, 5.0, 0.0) + rng.normal(size=80)
    return Pool("de", samples, quality=quality, embeddings=rng.normal(size=(80, 16)).astype(np.float32))


def test_coverage_uses_a_partition_no_selector_uses():
    pool = _topical_pool()
    cover = coverage_labels(pool, random_state=0)
    for k in (20, default_n_clusters(80), 2 * default_n_clusters(80)):  # mdaq_das, car, and coverage's own k
        selector_labels = cluster_labels(pool.embeddings, k, random_state=0)
        assert adjusted_rand_score(cover, selector_labels) < 0.5
    for method in ("car", "mdaq_das"):
        idx = get_selector(method).select(pool, 20)
        own = cluster_labels(pool.embeddings, default_n_clusters(80), random_state=0)
        if method == "car":  # the old metric: CaR's k and seed, i.e. car's own clusters, so 1.0 by construction
            assert selection_metrics(pool, idx, clusters=own)["cluster_coverage"] == 1.0
        coverage = selection_metrics(pool, idx)["cluster_coverage"]
        assert coverage == len(np.unique(cover[idx])) / len(np.unique(cover)) and coverage < 1.0
