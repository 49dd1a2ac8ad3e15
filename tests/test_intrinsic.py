"""Intrinsic selection metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mdaq import Pool, Sample
from mdaq.evaluation.intrinsic import (
    METRICS,
    intrinsic_table,
    language_mix,
    mean_pairwise_cosine_distance,
    selection_metrics,
)


def _pool(outputs=("a", "bb", "ccc", "dddddddddd"), revised=(True, False, True, False), emb=True, quality=True):
    """Four samples: embeddings e1, e2, -e1, 2*e2; responses of 1, 2, 3 and 10 characters; quality 1..4."""
    samples = [
        Sample.create("de", f"instruction {i}", "", out, meta={} if r is None else {"is_revised": r})
        for i, (out, r) in enumerate(zip(outputs, revised, strict=True))
    ]
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, 2.0]]) if emb else None
    return Pool("de", samples, quality=np.array([1.0, 2.0, 3.0, 4.0]) if quality else None, embeddings=embeddings)


def test_hand_computed_metrics():
    m = selection_metrics(_pool(), [0, 1, 2], clusters=np.array([0, 0, 1, 2]))
    assert list(m) == list(METRICS)
    assert m["n_selected"] == 3
    assert m["share_revised"] == pytest.approx(2 / 3)
    assert m["cluster_coverage"] == pytest.approx(2 / 3)  # clusters 0 and 1 of {0, 1, 2}
    # pairs (0,1): cos 0 -> 1; (0,2): cos -1 -> 2; (1,2): cos 0 -> 1
    assert m["mean_pairwise_distance"] == pytest.approx(4 / 3)
    # whole pool adds (0,3): 1, (1,3): 0 (same direction, other norm), (2,3): 1 -> 6 / 6
    assert m["pool_mean_pairwise_distance"] == pytest.approx(1.0)
    assert m["mean_quality"] == pytest.approx(2.0)
    assert (m["len_mean"], m["len_median"]) == (2.0, 2.0)
    assert m["len_p90"] == pytest.approx(2.8)  # 2 + 0.8 * (3 - 2)


def test_lengths_quality_and_order_independence():
    m = selection_metrics(_pool(), [3, 1, 0, 2])
    assert (m["len_mean"], m["len_median"]) == (4.0, 2.5)
    assert m["len_p90"] == pytest.approx(7.9)  # position 2.7 between 3 and 10: 3 + 0.7 * 7
    assert m["mean_quality"] == pytest.approx(2.5)
    assert selection_metrics(_pool(), [1, 3])["mean_pairwise_distance"] == pytest.approx(0.0)
    a = selection_metrics(_pool(), np.array([2, 0]), clusters=np.array([0, 1, 0, 1]))
    b = selection_metrics(_pool(), [0, 2], clusters=np.array([0, 1, 0, 1]))
    assert a == b and a["cluster_coverage"] == 0.5


def test_closed_form_matches_pairwise_loop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5)) * rng.uniform(0.1, 5, size=(30, 1))  # rows of different norms
    x[7] = 0.0  # a zero row has cosine 0 to everything
    u = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    naive = np.mean([1 - u[i] @ u[j] for i in range(30) for j in range(i + 1, 30)])
    assert mean_pairwise_cosine_distance(x) == pytest.approx(naive, abs=1e-12)
    assert math.isnan(mean_pairwise_cosine_distance(x[:1])) and math.isnan(mean_pairwise_cosine_distance(x[:0]))


def test_empty_selection():
    m = selection_metrics(_pool(), [], clusters=np.array([0, 0, 1, 2]))
    assert m["n_selected"] == 0 and m["cluster_coverage"] == 0.0
    assert m["pool_mean_pairwise_distance"] == pytest.approx(1.0)
    for key in ("share_revised", "mean_pairwise_distance", "mean_quality", "len_mean", "len_median", "len_p90"):
        assert math.isnan(m[key]), key


def test_nan_paths_without_features_or_labels():
    m = selection_metrics(_pool(emb=False, quality=False, revised=(True, None, True, False)), [0, 1])
    for key in ("share_revised", "mean_pairwise_distance", "pool_mean_pairwise_distance"):
        assert math.isnan(m[key]), key
    assert math.isnan(m["mean_quality"]) and m["len_mean"] == 1.5
    assert m["cluster_coverage"] in (0.5, 1.0)  # the coverage partition reads the text, not the embeddings
    # labels passed in still give a coverage without embeddings; a single selected sample has no pairs
    m = selection_metrics(_pool(emb=False), [0], clusters=np.array([0, 1, 1, 1]))
    assert m["cluster_coverage"] == 0.5 and math.isnan(m["mean_pairwise_distance"])
    assert m["share_revised"] == 1.0
    empty = Pool("de", [])
    assert math.isnan(selection_metrics(empty, [])["cluster_coverage"])


def _topics(per_topic: int) -> Pool:
    """Three topics in three scripts (no character n-gram in common), ``per_topic`` samples each, topic t at rows
    t * per_topic ...; the embeddings are noise, so only the text can separate the topics."""
    vocab = [
        ["apple", "garden", "river", "window", "pencil", "forest"],
        ["яблоко", "сад", "река", "окно", "карандаш", "лес"],
        ["りんご", "にわ", "かわ", "まど", "えんぴつ", "もり"],
    ]
    rng = np.random.default_rng(1)
    samples = [
        Sample.create("fr", " ".join(rng.choice(vocab[t], 3)), "", " ".join(rng.choice(vocab[t], 4)))
        for t in range(3)
        for _ in range(per_topic)
    ]
    return Pool("fr", samples, embeddings=rng.normal(size=(3 * per_topic, 4)))


def test_coverage_partition_reads_the_text_is_seeded_and_uses_twice_car_k():
    from mdaq.evaluation.intrinsic import coverage_labels, coverage_n_clusters

    pool = _topics(6)  # n = 18: CaR's k = floor(sqrt(9)) = 3, coverage k = 6
    assert coverage_n_clusters(18) == 6 and coverage_n_clusters(80) == 12 and coverage_n_clusters(1) == 1
    assert len(np.unique(coverage_labels(pool))) == 6
    assert selection_metrics(pool, [0, 1, 2], n_clusters=3)["cluster_coverage"] == pytest.approx(1 / 3)
    assert selection_metrics(pool, [0, 6, 12], n_clusters=3)["cluster_coverage"] == 1.0
    assert selection_metrics(pool, [0, 6], n_clusters=3)["cluster_coverage"] == pytest.approx(2 / 3)
    assert selection_metrics(pool, [0, 6], n_clusters=1)["cluster_coverage"] == 1.0
    a = selection_metrics(pool, [0, 5, 7], random_state=3)
    b = selection_metrics(pool, [0, 5, 7], random_state=3)
    assert a == b and 0 < a["cluster_coverage"] <= 3 / 6


def test_errors():
    pool = _pool()
    with pytest.raises(ValueError, match="out of range"):
        selection_metrics(pool, [0, 4])
    with pytest.raises(ValueError, match="repeats"):
        selection_metrics(pool, [1, 1])
    with pytest.raises(ValueError, match="integers"):
        selection_metrics(pool, [0.0, 1.0])
    with pytest.raises(ValueError, match=r"clusters has shape \(3,\), expected \(4,\)"):
        selection_metrics(pool, [0], clusters=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="n_clusters"):
        selection_metrics(pool, [0], n_clusters=0)


def test_language_mix():
    even = language_mix({"de": 5, "fr": 5, "ja": 5})
    assert even["lang_entropy"] == pytest.approx(1.0) and even["share_fr"] == pytest.approx(1 / 3)
    assert language_mix({"de": 7}) == {"share_de": 1.0, "lang_entropy": 0.0}
    assert language_mix({"de": 7, "fr": 0}) == {"share_de": 1.0, "share_fr": 0.0, "lang_entropy": 0.0}
    mix = language_mix({"ja": 2, "de": 1, "fr": 1})
    assert list(mix) == ["share_de", "share_fr", "share_ja", "lang_entropy"] and mix["share_ja"] == 0.5
    assert mix["lang_entropy"] == pytest.approx(1.5 * math.log(2) / math.log(3))  # H(.25, .25, .5) / log 3
    nothing = language_mix({"de": 0, "fr": 0})
    assert all(math.isnan(v) for v in nothing.values())
    with pytest.raises(ValueError, match=r"selected_by_lang\['fr'\]"):
        language_mix({"de": 1, "fr": -2})


def test_intrinsic_table():
    rows = [
        {"method": "random", "lang": "fr", "n_selected": 3, "mean_quality": float("nan")},
        {"method": "mdaq_das", "lang": "fr", "mean_quality": 0.5, "n_selected": 3},
        {"method": "mdaq_das", "lang": "de", "n_selected": np.int64(2)},
    ]
    table = intrinsic_table(rows)
    assert list(table.columns) == ["method", "language", "metric", "value"] and table["value"].dtype == np.float64
    assert table[["method", "language", "metric"]].values.tolist() == [
        ["mdaq_das", "de", "n_selected"],
        ["mdaq_das", "fr", "mean_quality"],
        ["mdaq_das", "fr", "n_selected"],
        ["random", "fr", "mean_quality"],
        ["random", "fr", "n_selected"],
    ]
    assert table["value"].tolist()[:3] == [2.0, 0.5, 3.0] and math.isnan(table["value"][3])
    assert table.index.tolist() == list(range(5))
    empty = intrinsic_table([])
    assert isinstance(empty, pd.DataFrame) and len(empty) == 0 and list(empty.columns) == list(table.columns)
    with pytest.raises(ValueError, match=r"rows\[0\] lacks lang"):
        intrinsic_table([{"method": "random", "n_selected": 1}])
    with pytest.raises(ValueError, match="metric 'note' is not numeric"):
        intrinsic_table([{"method": "random", "lang": "de", "note": "x"}])
    with pytest.raises(ValueError, match="duplicate metric 'n_selected'"):
        intrinsic_table([rows[0], rows[0]])


def test_metrics_feed_the_table():
    pool = _pool()
    row = {"method": "all", "lang": "de", **selection_metrics(pool, [0, 1, 2, 3], clusters=np.arange(4))}
    table = intrinsic_table([row])
    assert sorted(table["metric"]) == sorted(METRICS)
    assert table.set_index("metric").loc["cluster_coverage", "value"] == 1.0


def _write_sel(path, pool, idx):
    from mdaq.selectors import write_selection

    write_selection(path, pool, np.asarray(idx), "m")


def test_intrinsic_report_modes_and_figure(tmp_path):
    from mdaq.evaluation.intrinsic import intrinsic_report, plot_composition, write_intrinsic

    pools = {"de": _pool()}
    fr = [Sample.create("fr", f"consigne {i}", "", "x" * (i + 1), meta={"is_revised": i % 2 == 0}) for i in range(4)]
    pools["fr"] = Pool("fr", fr, quality=np.arange(4.0), embeddings=np.eye(4)[:, :3] + 0.1)
    for mode, picks in (("per", {"de": [0, 2], "fr": [1]}), ("pool", {"de": [1], "fr": [0, 2, 3]})):
        for method in ("a", "b"):
            for lang, idx in picks.items():
                _write_sel(tmp_path / mode / method / f"{lang}.jsonl", pools[lang], idx)
    table, mix = intrinsic_report(pools, ["a", "b"], {"per_language": tmp_path / "per", "pooled": tmp_path / "pool"})
    assert set(table["mode"]) == {"per_language", "pooled"} and set(table["method"]) == {"a", "b"}
    share = table[(table["metric"] == "share_revised")].set_index(["mode", "method", "language"])["value"]
    assert share[("per_language", "a", "de")] == 1.0 and share[("per_language", "a", "fr")] == 0.0
    assert share[("pooled", "b", "fr")] == pytest.approx(2 / 3)
    pooled = mix[(mix["mode"] == "pooled") & (mix["method"] == "a")].iloc[0]
    assert pooled["share_de"] == pytest.approx(0.25) and pooled["share_fr"] == pytest.approx(0.75)
    write_intrinsic(tmp_path / "out", table, mix)
    assert len(pd.read_csv(tmp_path / "out" / "intrinsic.csv")) == len(table)
    plot_composition(table, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"


def test_intrinsic_report_errors_name_the_file(tmp_path):
    from mdaq.evaluation.intrinsic import intrinsic_report

    pools = {"de": _pool()}
    with pytest.raises(FileNotFoundError, match="a/de.jsonl"):
        intrinsic_report(pools, ["a"], {"per_language": tmp_path})
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "de.jsonl").write_text('{"rank": 0, "index": 0, "id": "nope"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="record 0: id 'nope'"):
        intrinsic_report(pools, ["a"], {"per_language": tmp_path})
