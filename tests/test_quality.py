"""The QSM: training direction, save/load, resume, scoring order, evaluation maths, CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mdaq.quality.evaluate import (
    evaluate_pairs,
    length_scorer,
    length_strata,
    pairwise_accuracy,
    random_scorer,
    tau_source_difficulty,
)
from mdaq.quality.model import QualityModel
from mdaq.quality.train import Interrupted, train_qsm

from .conftest import QSM_TEST_CFG, needs_fast_bf16, planted_rows

CFG = QSM_TEST_CFG


def test_triplet_training_learns_planted_direction(tiny_encoder, tmp_path):
    rows = planted_rows()
    before = evaluate_pairs(QualityModel(tiny_encoder, max_len=32).score, rows)
    model = train_qsm(tiny_encoder, rows, CFG, tmp_path / "qsm", seed=0)
    losses = model.train_record_["losses"]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    after = evaluate_pairs(model.score, rows)
    assert after["pairwise_accuracy"] >= 0.9 and after["pairwise_accuracy"] > before["pairwise_accuracy"]


def test_regression_scorer_trains_and_round_trips(tiny_encoder, tmp_path):
    cfg = dataclasses.replace(CFG, kind="regression")
    model = train_qsm(tiny_encoder, planted_rows(), cfg, tmp_path / "reg", seed=0)
    assert evaluate_pairs(model.score, planted_rows())["pairwise_accuracy"] >= 0.9
    again = QualityModel.load(tmp_path / "reg")
    a, r = ["Décris chat noir."], ["chat noir"]
    np.testing.assert_allclose(model.score(a, r), again.score(a, r), rtol=1e-5)


def test_save_load_gives_identical_scores(tiny_encoder, tmp_path):
    model = train_qsm(tiny_encoder, planted_rows(8), CFG, tmp_path / "m", seed=0)
    loaded = QualityModel.load(tmp_path / "m")
    instr, resp = ["a b c", "日本語の指示", "x"], ["a b c d", "応答です", "y" * 50]
    np.testing.assert_allclose(model.score(instr, resp), loaded.score(instr, resp), rtol=1e-5, atol=1e-6)
    cfg = json.loads((tmp_path / "m" / "qsm_config.json").read_text())
    assert cfg["train_record"]["n_pairs"] == 8 and cfg["kind"] == "triplet"
    assert (tmp_path / "m" / "model.safetensors").is_file()


@pytest.mark.parametrize("group_by_length", [pytest.param(0, marks=pytest.mark.slow), 2])  # suite budget: one default
def test_resume_reaches_the_same_model(tiny_encoder, tmp_path, group_by_length):
    rows = planted_rows(16)
    cfg = dataclasses.replace(CFG, group_by_length=group_by_length)
    full = train_qsm(tiny_encoder, rows, cfg, tmp_path / "full", seed=3, ckpt_dir=tmp_path / "ck_full")
    with pytest.raises(Interrupted):
        train_qsm(tiny_encoder, rows, cfg, tmp_path / "res", seed=3, ckpt_dir=tmp_path / "ck", stop_after=3)
    assert json.loads((tmp_path / "ck" / "state.json").read_text())["step"] == 2  # last checkpoint before crash
    resumed = train_qsm(tiny_encoder, rows, cfg, tmp_path / "res", seed=3, ckpt_dir=tmp_path / "ck")
    a, r = ["Décris chat noir 1."], ["chat noir"]
    np.testing.assert_allclose(full.score(a, r), resumed.score(a, r), rtol=1e-5, atol=1e-6)
    assert full.train_record_["losses"] == resumed.train_record_["losses"]


def test_checkpoint_of_another_run_is_discarded(tiny_encoder, tmp_path):
    rows = planted_rows(16)
    with pytest.raises(Interrupted):
        train_qsm(tiny_encoder, rows, CFG, tmp_path / "a", seed=3, ckpt_dir=tmp_path / "ck", stop_after=2)
    other = train_qsm(tiny_encoder, rows, CFG, tmp_path / "b", seed=4, ckpt_dir=tmp_path / "ck")  # another seed
    fresh = train_qsm(tiny_encoder, rows, CFG, tmp_path / "c", seed=4)
    assert other.train_record_["losses"] == fresh.train_record_["losses"]  # started over, not from seed 3's step 2


def test_score_keeps_input_order_across_length_sorted_batches(tiny_encoder):
    model = QualityModel(tiny_encoder, max_len=32)
    instr = [f"q {i}" for i in range(10)]
    resp = ["r" * (i * 7 % 11 + 1) for i in range(10)]
    batched = model.score(instr, resp, batch_size=3)
    single = np.concatenate([model.score([i], [r]) for i, r in zip(instr, resp, strict=True)])
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-5)


def test_pairwise_accuracy_hand_computed():
    res = pairwise_accuracy(np.array([2.0, 1.0, 3.0, 0.0]), np.array([1.0, 1.0, 4.0, -1.0]))
    assert res["pairwise_accuracy"] == pytest.approx((1 + 0.5 + 0 + 1) / 4) and res["n"] == 4
    assert 0 <= res["ci_low"] <= res["pairwise_accuracy"] <= res["ci_high"] <= 1


def test_source_difficulty_tau_and_baselines():
    assert tau_source_difficulty(np.array([1.0, 2.0, 3.0, 4.0]), [10, 20, None, 40]) == pytest.approx(1.0)
    rows = planted_rows(30)
    assert evaluate_pairs(length_scorer, rows)["pairwise_accuracy"] == 1.0  # planted revisions are longer
    rnd = evaluate_pairs(random_scorer(0), planted_rows(200))["pairwise_accuracy"]
    assert 0.35 < rnd < 0.65


def test_bad_model_folder_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved QSM"):
        QualityModel.load(tmp_path)
    with pytest.raises(ValueError, match="kind must be"):
        QualityModel(tmp_path, kind="bogus")


def test_cli_qsm_eval(tiny_encoder, tmp_path, capsys):
    from mdaq.cli import main

    train_qsm(tiny_encoder, planted_rows(8), CFG, tmp_path / "m", seed=0)
    midb = [
        {
            "Raw Instruction": r["raw_instruction"],
            "Raw Input": "",
            "Raw Response": r["raw_response"],
            "Revised Instruction": r["revised_instruction"],
            "Revised Input": "",
            "Revised Response": r["revised_response"],
            "Distance": r["distance"],
        }
        for r in planted_rows(10)
    ]
    midb.append({**midb[0], "Revised Response": midb[0]["Raw Response"]})  # no preference: skipped, counted
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(midb), encoding="utf-8")
    assert main(["qsm", "eval", "--model", str(tmp_path / "m"), "--pairs", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 10 and out["n_skipped"] == 1 and 0 <= out["pairwise_accuracy"] <= 1
    assert set(out["strata"]) == {"shorter", "matched", "longer", "rev_not_longer"}
    assert sum(out["strata"][s]["n"] for s in ("shorter", "matched", "longer")) == 10
    assert set(out["baselines"]) == {"length", "random"} and out["baselines"]["length"]["pairwise_accuracy"] == 1.0
    assert {r["baseline"] for r in out["paired"]} == {"length"}
    train = tmp_path / "train.json"
    train.write_text(json.dumps(midb[:6]), encoding="utf-8")
    args = ["qsm", "eval", "--model", str(tmp_path / "m"), "--pairs", str(path), "--train-pairs", str(train)]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["baselines"]) == {"length", "random", "surface"} and "strata" in out["baselines"]["surface"]
    assert {(r["baseline"], r["stratum"]) for r in out["paired"]} >= {("surface", "matched"), ("length", "all")}
    path.write_text('[{"Raw Instruction": 1}]', encoding="utf-8")
    assert main(["qsm", "eval", "--model", str(tmp_path / "m"), "--pairs", str(path)]) == 1
    assert "pairs.json, record 0" in capsys.readouterr().err


def test_score_jsonl_streams_in_chunks(tiny_encoder, tmp_path):
    from mdaq import Sample
    from mdaq.io import write_samples

    samples = [Sample.create("fr", f"instr {i}", "in" if i % 2 else "", "out " * (i + 1)) for i in range(7)]
    write_samples(tmp_path / "pool.jsonl", samples)
    model = QualityModel(tiny_encoder, max_len=32)
    np.testing.assert_allclose(
        model.score_jsonl(tmp_path / "pool.jsonl", chunk=3), model.score_samples(samples), rtol=1e-4, atol=1e-5
    )


def test_heldout_rows_are_accepted():
    from mdaq.quality.evaluate import pair_texts

    rows = [{"instruction": "i", "input": "x", "chosen": "good", "rejected": "bad", "distance": 3}]
    assert pair_texts(rows) == (["i\nx"], ["good"], ["bad"], [3])


def test_freeze_embeddings_keeps_the_token_table(tiny_encoder, tmp_path):
    from safetensors.torch import load_file

    cfg = dataclasses.replace(CFG, freeze_embeddings=True, epochs=1)
    train_qsm(tiny_encoder, planted_rows(8), cfg, tmp_path / "f", seed=0)
    key = "embeddings.word_embeddings.weight"
    before, after = load_file(tiny_encoder / "model.safetensors"), load_file(tmp_path / "f" / "model.safetensors")
    assert (before[key] == after[key]).all()
    assert not (
        before["encoder.layer.0.attention.self.query.weight"] == after["encoder.layer.0.attention.self.query.weight"]
    ).all()


@pytest.mark.slow  # suite budget: test_checkpoint_of_another_run_is_discarded covers the same rule
def test_checkpoint_of_another_run_is_not_resumed(tiny_encoder, tmp_path):
    rows = planted_rows(16)
    train_qsm(tiny_encoder, rows, CFG, tmp_path / "a", seed=3, ckpt_dir=tmp_path / "ck")  # finished: step 8
    other = dataclasses.replace(CFG, lr=1e-3)
    fresh = train_qsm(tiny_encoder, rows, other, tmp_path / "fresh", seed=3)
    reused = train_qsm(tiny_encoder, rows, other, tmp_path / "b", seed=3, ckpt_dir=tmp_path / "ck")
    assert reused.train_record_["losses"] == fresh.train_record_["losses"]  # trained anew, not "resumed" at 8


@needs_fast_bf16
def test_bf16_scores_track_fp32_and_precision_is_saved(tiny_encoder, tmp_path):
    instr = [f"Décris {t}." for t in ("un chat", "la mer", "東京", "a b c d e f")]
    resp = ["Un chat noir.", "La mer est bleue " * 5, "東京は大きい都市です。", "x"]
    fp32 = QualityModel(tiny_encoder, max_len=32, precision="fp32").score(instr, resp)  # not "auto": bf16 on AMX
    bf16 = QualityModel(tiny_encoder, max_len=32, precision="bf16").score(instr, resp)
    np.testing.assert_allclose(bf16, fp32, rtol=0.05, atol=0.05)
    assert not np.array_equal(bf16, fp32)  # the switch really changes the arithmetic
    cfg = dataclasses.replace(CFG, epochs=1, precision="bf16", dropout=0.0)
    model = train_qsm(tiny_encoder, planted_rows(8), cfg, tmp_path / "m", seed=0)
    assert QualityModel.load(tmp_path / "m").precision == "bf16"
    assert model.model_.config.hidden_dropout_prob == 0.0
    with pytest.raises(ValueError, match="precision"):
        QualityModel(tiny_encoder, precision="half")


# ---- length strata, the surface baseline, paired tests, the stage's tables -------------------------------------


def test_length_strata_boundaries_are_exact():
    raw = ["x" * 100] * 8 + ["abcde"]
    revised = ["y" * n for n in (79, 80, 99, 100, 101, 125, 126, 50)] + ["éèêëà"[:4]]  # 4 characters, 8 bytes
    masks = length_strata(revised, raw)
    assert masks["shorter"].tolist() == [1, 0, 0, 0, 0, 0, 0, 1, 0]
    assert masks["matched"].tolist() == [0, 1, 1, 1, 1, 1, 0, 0, 1]  # 0.8, 1.0 and 1.25 exactly are matched
    assert masks["longer"].tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 0]
    assert masks["rev_not_longer"].tolist() == [1, 1, 1, 1, 0, 0, 0, 1, 1]  # 1.0 is "not longer"
    assert masks["all"].all() and (masks["shorter"] ^ masks["matched"] ^ masks["longer"]).all()


def test_evaluate_pairs_reports_each_stratum():
    rows = [
        {"instruction": "q", "chosen": "long revision", "rejected": "raw", "distance": 1},  # longer
        {"instruction": "q", "chosen": "rev", "rejected": "raw answer", "distance": 2},  # shorter
        {"instruction": "q", "chosen": "abcd", "rejected": "wxyz", "distance": 3},  # matched, equal length
    ]
    res = evaluate_pairs(length_scorer, rows)
    assert res["pairwise_accuracy"] == pytest.approx(1.5 / 3) and res["n"] == 3
    assert res["strata"]["longer"]["pairwise_accuracy"] == 1.0 and res["strata"]["shorter"]["pairwise_accuracy"] == 0
    assert res["strata"]["matched"]["pairwise_accuracy"] == 0.5  # a tie counts half
    assert res["strata"]["rev_not_longer"]["n"] == 2


def _digit_rows(n: int, seed: int, fmt: str) -> list[dict]:
    """Pairs whose revision replaces letters by digits and is shorter or longer at random: length says nothing."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        words = ["".join(rng.choice(list("abcdefghij"), size=6)) for _ in range(int(rng.integers(6, 14)))]
        rev = [w[:3] + str(int(rng.integers(100, 1000))) if k % 2 == 0 else w for k, w in enumerate(words)]
        rev = rev[:-1] if i % 2 else [*rev, "extra"]
        instr, raw, revised = f"Write {i}.", " ".join(words), " ".join(rev)
        if fmt == "heldout":
            rows.append({"instruction": instr, "input": "", "chosen": revised, "rejected": raw, "distance": None})
        else:
            rows.append(
                {
                    "revised_instruction": instr,
                    "revised_input": "",
                    "revised_response": revised,
                    "raw_response": raw,
                }
            )
    return rows


def test_surface_baseline_learns_a_planted_rule_length_cannot_see():
    from mdaq.quality.surface import FEATURES, SurfaceBaseline

    train, test = _digit_rows(60, 0, "qsm_train"), _digit_rows(60, 1, "heldout")
    surface = SurfaceBaseline(seed=0).fit(train)
    acc_surface = evaluate_pairs(surface.score, test)["pairwise_accuracy"]
    acc_length = evaluate_pairs(length_scorer, test)["pairwise_accuracy"]
    assert acc_surface >= 0.95 and acc_length <= 0.6 and acc_surface - acc_length >= 0.35
    weights = surface.weights()
    assert set(weights) == set(FEATURES) and max(weights, key=weights.get) == "digit_share"
    again = SurfaceBaseline(seed=0).fit(train)
    np.testing.assert_array_equal(surface.coef_, again.coef_)  # deterministic
    with pytest.raises(ValueError, match="at least one training pair"):
        SurfaceBaseline().fit([])


def _hand_pairs():
    """A per-pair table as score_table writes it: language a (seen, 10 shorter pairs), b (unseen, 4 longer ones).
    qsm is right on a's pairs and 3 of b's; length on 2 of a's and all of b's; surface exactly as qsm."""
    import pandas as pd

    correct = {
        "qsm": [1] * 10 + [1, 1, 1, 0],
        "length": [0] * 8 + [1, 1] + [1, 1, 1, 1],
        "surface": [1] * 10 + [1, 1, 1, 0],
    }
    base = pd.DataFrame(
        {
            "lang": ["a"] * 10 + ["b"] * 4,
            "split": ["seen"] * 10 + ["unseen"] * 4,
            "item": list(range(10)) + list(range(4)),
            "all": True,
            "shorter": [True] * 10 + [False] * 4,
            "matched": False,
            "longer": [False] * 10 + [True] * 4,
            "rev_not_longer": [True] * 10 + [False] * 4,
            "gap": 0.0,
            "distance": pd.array([None] * 14, dtype="Int64"),
        }
    )
    return pd.concat([base.assign(scorer=k, correct=np.array(v, float)) for k, v in correct.items()])


def test_paired_tests_against_hand_computed_values():
    from mdaq.quality.compare import paired_tests
    from mdaq.stats import paired_bootstrap_ci

    table = paired_tests(_hand_pairs(), "qsm", ("length", "surface"), n_boot=500, seed=0)
    assert len(table) == 2 * 3 * 5  # baseline x group x stratum
    row = table.set_index(["baseline", "group", "stratum"])
    seen = row.loc[("length", "seen", "all")]
    assert (seen["n"], seen["d_acc"], seen["n_reference_better"]) == (10, 0.8, 8)
    assert seen["p_sign"] == pytest.approx(2 / 2**8)  # 8 of 8 discordant pairs favour qsm
    both = row.loc[("length", "all", "all")]
    assert (both["n"], both["n_langs"], both["d_acc"]) == (14, 2, pytest.approx(7 / 14))
    assert both["p_sign"] == pytest.approx(2 * (1 + 9) / 2**9)  # 8 of 9 discordant pairs
    d = np.array([1.0] * 8 + [0, 0, 0, 0, 0, -1])
    assert (both["d_lo"], both["d_hi"]) == paired_bootstrap_ci(d, ["a"] * 10 + ["b"] * 4, n_boot=500, seed=0)
    # Holm over the 18 tests with pairs (12 cells are empty: NaN, outside the family): five p = 2/256 come first,
    # so each is adjusted to 18 x 2/256; then 13 x 20/512 for the pooled test; the rest are p = 1.
    assert seen["p_holm"] == pytest.approx(18 * 2 / 256) and both["p_holm"] == pytest.approx(13 * 20 / 512)
    assert table["p_sign"].notna().sum() == 18 and np.isnan(row.loc[("length", "seen", "matched"), "p_holm"])
    same = row.loc[("surface", "all", "all")]
    assert (same["d_acc"], same["d_lo"], same["d_hi"], same["p_sign"]) == (0, 0, 0, 1)
    with pytest.raises(ValueError, match="no pairs scored by 'untrained'"):
        paired_tests(_hand_pairs(), "qsm", ("untrained",))


def test_summary_macro_means_skip_languages_without_a_stratum():
    from mdaq.quality.evaluate import strata_table, summarize

    pairs = _hand_pairs()
    cells = strata_table(pairs, n_boot=50).set_index(["scorer", "lang", "stratum"])
    assert cells.loc[("length", "a", "shorter"), "pairwise_accuracy"] == 0.2
    assert cells.loc[("length", "b", "shorter"), "n"] == 0 and np.isnan(
        cells.loc[("length", "b", "shorter"), "ci_low"]
    )
    summary = summarize(pairs, n_boot=50).set_index(["scorer", "group", "stratum"])
    assert summary.loc[("length", "all", "all"), "pairwise_accuracy"] == pytest.approx((0.2 + 1.0) / 2)  # macro
    assert summary.loc[("length", "all", "shorter"), ["n_langs", "n"]].tolist() == [1, 10]
    assert summary.loc[("length", "all", "shorter"), "pairwise_accuracy"] == pytest.approx(0.2)
    assert summary.loc[("length", "all", "matched"), "n_langs"] == 0
    lo, hi = summary.loc[("qsm", "seen", "all"), ["ci_low", "ci_high"]]
    assert lo == hi == 1.0


def test_stage_tables_files_and_figure(tmp_path):
    from mdaq.quality.plots import plot_strata
    from mdaq.quality.stage import BASELINES, TABLES, evaluate_all, write_results
    from mdaq.quality.surface import SurfaceBaseline

    held = {"fr": _digit_rows(12, 2, "heldout"), "ko": _digit_rows(8, 3, "heldout")}
    surface = SurfaceBaseline().fit(_digit_rows(30, 4, "qsm_train"))
    scorers = {"qsm": surface.score, "untrained": random_scorer(9), "length": length_scorer}
    scorers |= {"surface": surface.score, "random": random_scorer(0)}
    tables = evaluate_all(scorers, held, unseen=["ko"], seed=0)
    assert set(tables["strata"]["scorer"]) == {"qsm", *BASELINES} and len(tables["strata"]) == 5 * 2 * 5
    assert set(tables["summary"]["group"]) == {"seen", "unseen", "all"}
    assert len(tables["paired"]) == 2 * 3 * 5
    surf = tables["paired"].set_index(["baseline", "group", "stratum"]).loc[("surface", "all", "all")]
    assert surf["d_acc"] == 0 and surf["p_sign"] == 1  # the same scorer under two names
    write_results(tables, tmp_path)
    for file in TABLES.values():
        assert (tmp_path / file).stat().st_size > 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["length_all"] == pytest.approx(
        tables["summary"].set_index(["scorer", "group", "stratum"]).loc[("length", "all", "all"), "pairwise_accuracy"]
    )
    assert {"qsm_seen_matched", "surface_unseen_rev_not_longer"} <= set(metrics)
    assert "tau_source_difficulty" in _header(tmp_path / "qsm_by_lang.csv")
    plot_strata(tables["summary"], tmp_path / "qsm_strata.png")
    assert (tmp_path / "qsm_strata.png").stat().st_size > 0


def _header(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()[0].split(",")
