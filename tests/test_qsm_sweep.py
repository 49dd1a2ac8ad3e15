"""The QSM variant sweep: pooled accuracy, paired tests against the paper-faithful reference, the decision rule,
the Markdown table, and scripts/qsm_sweep.py end to end on the tiny encoder (resumable)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from mdaq.config import load_profile
from mdaq.errors import DataError
from mdaq.quality import sweep

from .conftest import REPO

STRATA = ("shorter", "matched", "longer")


def _pairs(correct: dict[str, list[float]], strata: list[str], langs: list[str], split: list[str]) -> pd.DataFrame:
    """A score_table-shaped frame: one row per (scorer, pair)."""
    rows = []
    for scorer, values in correct.items():
        for item, (c, s, lang, sp) in enumerate(zip(values, strata, langs, split, strict=True)):
            row = {"scorer": scorer, "lang": lang, "split": sp, "item": item, "correct": c, "gap": c - 0.5}
            row |= {k: k == s for k in STRATA} | {"all": True, "rev_not_longer": s == "shorter"}
            rows.append(row)
    return pd.DataFrame(rows)


def test_pooled_accuracy_hand_computed():
    strata = ["matched", "matched", "longer", "shorter"]
    pairs = _pairs({"a": [1, 0, 1, 0.5]}, strata, ["de", "de", "ja", "ja"], ["seen", "seen", "unseen", "unseen"])
    row = sweep.pooled_accuracy(pairs).iloc[0]
    assert row["acc_all"] == 0.625 and row["n_all"] == 4
    assert (row["acc_seen"], row["acc_unseen"], row["acc_matched"], row["acc_shorter"]) == (0.5, 0.75, 0.5, 0.5)
    assert row["n_matched"] == 2 and row["acc_macro"] == pytest.approx((0.5 + 0.75) / 2)


def _experiment(n: int = 200) -> pd.DataFrame:
    """``paper`` right on half of everything; ``good`` right on every matched pair and as ``paper`` elsewhere;
    ``lossy`` right on 3/4 of the matched pairs but wrong on every longer one; ``same`` equals ``paper``."""
    strata = ["matched"] * n + ["longer"] * n
    paper = [float(i % 2) for i in range(2 * n)]
    good = [1.0] * n + paper[n:]
    lossy = [float(i % 4 != 0) for i in range(n)] + [0.0] * n
    langs = ["de" if i % 3 else "ja" for i in range(2 * n)]
    correct = {"paper": paper, "good": good, "lossy": lossy, "same": list(paper)}
    return _pairs(correct, strata, langs, ["seen"] * (2 * n))


def test_decision_picks_the_variant_that_gains_on_matched_pairs_without_losing_overall():
    pairs = _experiment()
    acc = sweep.pooled_accuracy(pairs)
    tests = sweep.tests_against_reference(pairs, ["paper", "good", "lossy", "same"], n_boot=200)
    assert set(tests["reference"]) == {"good", "lossy", "same"} and set(tests["stratum"]) == {"matched", "all"}
    assert len(tests) == 6 and (tests["p_holm"] >= tests["p_sign"]).all()
    decision = sweep.decide(acc, tests)
    assert decision["winner"] == "good"
    assert decision["verdicts"]["good"].startswith("qualifies")
    assert "loses overall accuracy" in decision["verdicts"]["lossy"]
    assert "no significant gain" in decision["verdicts"]["same"]


def test_decision_keeps_the_reference_on_a_null_result_and_says_so():
    pairs = _experiment()
    pairs = pairs[pairs["scorer"].isin(["paper", "same"])]
    acc = sweep.pooled_accuracy(pairs)
    tests = sweep.tests_against_reference(pairs, ["paper", "same"], n_boot=200)
    decision = sweep.decide(acc, tests)
    assert decision["winner"] == "paper"
    meta = {
        "command": "python scripts/qsm_sweep.py x",
        "date": "2026-01-01",
        "git_sha": "abc",
        "cpu_model": "CPU",
        "torch_threads": 2,
        "torch_version": "2",
        "encoder": "enc",
        "qsm": {"kind": "triplet"},
        "n_train": 10,
        "langs_seen": ["de"],
        "langs_unseen": [],
        "eval_max": 0,
        "n_langs": 2,
        "precision": "fp32",
        "default_is": "paper",
    }
    variants = {
        "paper": {"overrides": {}, "train_s": 1.0, "score_s": 2.0, "note": "n"},
        "same": {"overrides": {"x": 1}},
    }
    text = sweep.render_markdown(acc, tests, decision, variants, meta)
    assert "no variant qualifies" in text and "paper-faithful `paper` scorer stays" in text
    assert "it follows the decision" in text
    assert "python scripts/qsm_sweep.py x" in text and "all pairs of every language" in text
    assert text.count("| `same` |") == 3 and "x=1" in text  # one accuracy row, two paired tests


def test_variant_settings_start_from_the_paper_faithful_scorer_and_are_validated():
    profile = load_profile(REPO / "profiles" / "default.yaml")
    profile["qsm"]["normalize"] = True  # a default that moved on: the variants still start from the paper's
    profile["qsm"]["epochs"] = 3  # the default QSM now trains 3 epochs with a validation split (the sweep's winner)
    cfg = sweep.variant_qsm(profile, {"kind": "cross"})
    assert (cfg.kind, cfg.normalize, cfg.length_balance, cfg.val_share, cfg.epochs) == ("cross", False, 0.0, 0.0, 1)
    assert sweep.variant_qsm(profile, {"epochs": 3, "val_share": 0.1}).epochs == 3
    with pytest.raises(DataError, match="qsm"):
        sweep.variant_qsm(profile, {"no_such_key": 1})
    with pytest.raises(ValueError, match="unseen_langs"):
        sweep.variant_qsm(profile, {"unseen_langs": []})


# ---- the script, end to end ---------------------------------------------------------------------------------------


def _script():
    spec = importlib.util.spec_from_file_location("qsm_sweep", REPO / "scripts" / "qsm_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_script_writes_the_table_and_resumes(tiny_encoder, synthetic_midb, tmp_path, monkeypatch):
    profile = load_profile(REPO / "profiles" / "smoke.yaml")
    profile["qsm"] |= {"max_pairs_per_lang": 6, "max_len": 32, "unseen_langs": ["de"], "batch_size": 4}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(profile), encoding="utf-8")
    module = _script()
    out, work = tmp_path / "variants.md", tmp_path / "work"
    argv = ["--params", str(params), "--midb", str(synthetic_midb), "--encoders", str(tiny_encoder.parent)]
    argv += ["--eval-max", "8", "--work-dir", str(work), "--out", str(out)]
    argv += ['cross={"kind": "cross"}', 'early={"epochs": 2, "val_share": 0.5}']
    module.main(argv)
    text = out.read_text(encoding="utf-8")
    for name in ("`paper`", "`cross`", "`early`", "`surface`", "`length`"):
        assert f"| {name} |" in text
    assert "| *n pairs* |  | 16 | 8 | 8 |" in text  # 8 held-out pairs in each of fr (seen) and de (unseen)
    assert "--eval-max 8" in text and "## Decision" in text
    assert "does not follow the decision yet" in text or "it follows the decision" in text
    assert sorted(p.name for p in work.iterdir()) == ["cross", "early", "paper"]
    assert not (work / "cross" / "model").exists() and not (work / "cross" / "ckpt").exists()  # deleted once scored
    record = json.loads((work / "early" / "record.json").read_text())
    assert record["train_record"]["n_val_pairs"] == 3 and record["train_record"]["n_pairs"] == 3

    def no_training(*a, **k):
        raise AssertionError("a finished variant was trained again")

    monkeypatch.setattr(module, "train_qsm", no_training)
    module.main(argv)
    again = out.read_text(encoding="utf-8")
    strip = [line for line in again.splitlines() if not line.startswith("- run:")]
    assert strip == [line for line in text.splitlines() if not line.startswith("- run:")]


def test_sweep_script_refuses_bad_variants(tmp_path):
    module = _script()
    with pytest.raises(SystemExit, match="NAME=JSON"):
        module.parse_variants(["cross"])
    with pytest.raises(SystemExit, match="unique"):
        module.parse_variants(['a={"kind": "cross"}', 'a={"kind": "cross"}'])
    assert list(module.parse_variants(['b={"normalize": true}', "paper={}"])) == ["paper", "b"]
    assert np.isnan(sweep.pooled_accuracy(_pairs({"a": [1.0]}, ["matched"], ["de"], ["seen"]))["acc_unseen"][0])
