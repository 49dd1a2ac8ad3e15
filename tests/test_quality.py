"""The QSM: training direction, save/load, resume, scoring order, evaluation maths, CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mdaq.config import QSMConfig
from mdaq.quality.evaluate import evaluate_pairs, kendall_tau, length_scorer, pairwise_accuracy, random_scorer
from mdaq.quality.model import QualityModel
from mdaq.quality.train import Interrupted, train_qsm

from .conftest import needs_fast_bf16, planted_rows

CFG = QSMConfig(
    lr=2e-3, epochs=4, batch_size=8, max_len=32, warmup_ratio=0.0, checkpoint_every=2, freeze_embeddings=False
)


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


def test_kendall_tau_and_baselines():
    assert kendall_tau(np.array([1.0, 2.0, 3.0, 4.0]), [10, 20, None, 40]) == pytest.approx(1.0)
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
