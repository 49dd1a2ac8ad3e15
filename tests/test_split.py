"""The MIDB split: disjoint blocks, the same source item in the same split in every language, a seeded mixed pool."""

from __future__ import annotations

import numpy as np
import pytest

from mdaq.config import PrepareConfig, SplitConfig
from mdaq.data.midb import SOURCE_GAPS, alignment_similarity, load_pairs, midb_path
from mdaq.data.split import SPLITS, assign_split, prepare, split_bounds
from mdaq.io import read_jsonl, read_samples


def test_bounds_are_disjoint_with_guards():
    cfg = PrepareConfig(guard=5)
    b = split_bounds(cfg)
    spans = [b[s] for s in SPLITS]
    for (lo1, hi1), (lo2, _hi2) in zip(spans, spans[1:], strict=False):
        assert hi1 + 5 == lo2 and lo1 < hi1
    assert spans[-1][1] == 2301
    assert assign_split(spans[0][1], b) is None  # a guard position


def test_bad_fractions_are_rejected():
    with pytest.raises(ValueError, match="sum to at most 1"):
        split_bounds(PrepareConfig(split=SplitConfig(qsm_train=0.8, pool=0.3, heldout=0.2)))


def _ids_by_split(out):
    res = {}
    for lang in ("fr", "de"):
        res[lang] = {
            "qsm_train": {r["source_index"] for r in read_jsonl(out / "qsm_train" / f"{lang}.jsonl")},
            "pool": {s.meta["source_index"] for s in read_samples(out / "pool" / f"{lang}.jsonl")},
            "heldout": {r["source_index"] for r in read_jsonl(out / "heldout" / f"{lang}.jsonl")},
        }
    return res


def test_prepare_no_item_in_two_splits_and_same_split_across_languages(synthetic_midb, tmp_path):
    report = prepare(synthetic_midb, tmp_path / "out", PrepareConfig(), seed=0)
    by = _ids_by_split(tmp_path / "out")
    for lang in by:
        a, b, c = by[lang]["qsm_train"], by[lang]["pool"], by[lang]["heldout"]
        assert not (a & b or a & c or b & c)
    every = {s: by["fr"][s] | by["de"][s] for s in SPLITS}
    assert not (every["qsm_train"] & every["pool"] or every["pool"] & every["heldout"])
    # German's content at source index s really is item s (the fixture encodes s in the text).
    for s in read_samples(tmp_path / "out" / "pool" / "de.jsonl")[:50]:
        assert f"number {1000 + s.meta['source_index']}" in s.output
    assert report["languages"]["fr"]["dropped"]["qsm_train:revised_equals_raw"] == 1  # counted, not silent


def test_pool_is_mixed_seeded_and_deterministic(synthetic_midb, tmp_path):
    cfg = PrepareConfig(p_revised=0.5)
    prepare(synthetic_midb, tmp_path / "a", cfg, seed=3)
    prepare(synthetic_midb, tmp_path / "b", cfg, seed=3)
    prepare(synthetic_midb, tmp_path / "c", cfg, seed=4)
    a, b, c = (read_samples(tmp_path / d / "pool" / "fr.jsonl") for d in "abc")
    assert a == b and a != c
    share = np.mean([s.meta["is_revised"] for s in a])
    assert 0.4 < share < 0.6
    for s in a:
        assert ("revised answer" in s.output) == s.meta["is_revised"]


def test_max_pool_and_heldout_subsample(synthetic_midb, tmp_path):
    rep = prepare(synthetic_midb, tmp_path / "o", PrepareConfig(max_pool=20, max_heldout=10), seed=0)
    assert rep["languages"]["fr"]["n_pool"] == 20 and rep["languages"]["fr"]["n_heldout"] == 10
    assert rep["languages"]["fr"]["dropped"]["pool:max_pool"] > 0


def test_real_split_is_aligned_across_languages(midb_mirror):
    """On the real data, items sharing a source index share their invariant tokens (numbers, names, code);
    shifting by one destroys that. Checked for the two languages with a gap and one without."""
    fr = load_pairs(midb_path(midb_mirror, "MIDB_train", "fr"), "fr")
    fr_by_src = {p.source_index: p for p in fr}
    for lang in [*SOURCE_GAPS, "ja"]:
        pairs = load_pairs(midb_path(midb_mirror, "MIDB_train", lang), lang)
        tail = [p for p in pairs if p.source_index > 1800]  # after both gaps
        aligned = alignment_similarity(tail, [fr_by_src[p.source_index] for p in tail])
        shifted = alignment_similarity(tail[:-1], [fr_by_src[p.source_index + 1] for p in tail[:-1]])
        assert aligned.mean() > 5 * shifted.mean(), lang


@pytest.mark.parametrize(("max_heldout", "qsm_eval_max", "relation"), [(10, 30, "superset"), (30, 10, "subset")])
def test_qsm_heldout_has_its_own_cap_and_nests_with_heldout(
    synthetic_midb, tmp_path, max_heldout, qsm_eval_max, relation
):
    cfg = PrepareConfig(max_heldout=max_heldout, qsm_eval_max=qsm_eval_max)
    rep = prepare(synthetic_midb, tmp_path / "o", cfg, seed=0)
    for lang in ("fr", "de"):
        qsm = read_jsonl(tmp_path / "o" / "qsm_heldout" / f"{lang}.jsonl")
        run = read_jsonl(tmp_path / "o" / "heldout" / f"{lang}.jsonl")
        assert len(qsm) == qsm_eval_max and len(run) == max_heldout
        small, large = sorted(({r["id"] for r in qsm}, {r["id"] for r in run}), key=len)
        assert small < large and rep["languages"][lang]["qsm_heldout_vs_heldout"] == relation
        assert rep["languages"][lang]["n_qsm_heldout"] == qsm_eval_max
        assert [r["source_index"] for r in qsm] == sorted(r["source_index"] for r in qsm)
    # the run stages' held-out file does not depend on the QSM evaluation's cap
    again = prepare(synthetic_midb, tmp_path / "p", PrepareConfig(max_heldout=max_heldout, qsm_eval_max=0), seed=0)
    assert read_jsonl(tmp_path / "p" / "heldout" / "fr.jsonl") == read_jsonl(tmp_path / "o" / "heldout" / "fr.jsonl")
    n_block = again["languages"]["fr"]["n_qsm_heldout"]
    assert n_block > 400 and again["languages"]["fr"]["qsm_heldout_vs_heldout"] == "superset"  # 0 = all ~450
