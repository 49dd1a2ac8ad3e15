"""Issue 17's QSM variants: normalised vectors, the cross-encoder, length-balanced training pairs, early stopping.

Each variant trains on the tiny random encoder, saves, reloads to identical scores, and keeps the scoring API
(``score(instructions, responses)`` -> float32 scores in input order, higher = better)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mdaq.config import load_params
from mdaq.data.split import lang_rng
from mdaq.errors import DataError
from mdaq.quality.early_stop import EarlyStopping, split_validation
from mdaq.quality.evaluate import evaluate_pairs
from mdaq.quality.model import QualityModel
from mdaq.quality.train import Interrupted, is_not_longer, select_training_rows, train_qsm

from .conftest import QSM_TEST_CFG, REPO, planted_rows

CFG = QSM_TEST_CFG
VARIANTS = {
    "normalize": {"normalize": True},
    "cross": {"kind": "cross"},
    "cross_normalize": {"kind": "cross", "normalize": True},
    "early_stop": {"val_share": 0.25, "patience": 1},
}
INSTR = ["Décris chat noir 1.", "日本語の指示", "x", "Décris chat noir 1."]
RESP = ["chat noir 1 : chat noir.", "応答です", "y " * 40, "zq1 xv1"]


def _mixed_rows(n: int, lang: str, every: int = 3) -> list[dict]:
    """Planted rows where every ``every``-th raw response is made longer than its revision."""
    rows = planted_rows(n, lang)
    for i, r in enumerate(rows):
        if i % every == 0:
            r["raw_response"] = r["raw_response"] * 4
    return rows


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_trains_saves_and_reloads_to_identical_scores(name, tiny_encoder, tmp_path):
    cfg = dataclasses.replace(CFG, **VARIANTS[name])
    model = train_qsm(tiny_encoder, planted_rows(16), cfg, tmp_path / name, seed=0)
    scores = model.score(INSTR, RESP)
    assert scores.dtype == np.float32 and scores.shape == (len(INSTR),)
    loaded = QualityModel.load(tmp_path / name)
    assert (loaded.kind, loaded.normalize) == (cfg.kind, cfg.normalize)
    np.testing.assert_allclose(loaded.score(INSTR, RESP), scores, rtol=1e-5, atol=1e-6)
    saved = json.loads((tmp_path / name / "qsm_config.json").read_text())
    assert saved["normalize"] is cfg.normalize and saved["train_record"]["config"]["kind"] == cfg.kind
    assert not list((tmp_path / name).glob("*.bin")) and not list((tmp_path / name).glob("*.pt"))  # safetensors only
    if cfg.kind == "cross":
        assert (tmp_path / name / "qsm_head.safetensors").is_file()
    reversed_scores = loaded.score(INSTR[::-1], RESP[::-1])
    np.testing.assert_allclose(reversed_scores[::-1], scores, rtol=1e-5, atol=1e-6)  # input order kept


@pytest.mark.parametrize("kind", ["cross", "triplet"])
def test_variant_learns_the_planted_direction(kind, tiny_encoder, tmp_path):
    cfg = dataclasses.replace(CFG, kind=kind, normalize=True)
    model = train_qsm(tiny_encoder, planted_rows(), cfg, tmp_path / "m", seed=0)
    losses = model.train_record_["losses"]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert evaluate_pairs(model.score, planted_rows())["pairwise_accuracy"] >= 0.9


@pytest.mark.parametrize("kind", ["cross", "triplet", "regression"])
def test_training_forward_equals_scoring(kind, tiny_encoder):
    """Training scores (padded batch, gradients) and inference scores (length-sorted batches) agree, also when
    the (instruction, response) input is cut to ``max_len``."""
    import torch

    model = QualityModel(tiny_encoder, kind=kind, max_len=16, normalize=kind != "regression").load_encoder()
    model.model_.eval()
    with torch.no_grad():
        train_side = model.raw_scores(INSTR, RESP).numpy()
    np.testing.assert_allclose(model.score(INSTR, RESP, batch_size=2), train_side, rtol=1e-4, atol=1e-5)


def test_normalized_scores_are_distances_between_unit_vectors(tiny_encoder):
    plain = QualityModel(tiny_encoder, max_len=32).score(INSTR, RESP)
    unit = QualityModel(tiny_encoder, max_len=32, normalize=True).score(INSTR, RESP)
    assert (unit <= 0).all() and (unit >= -2 - 1e-6).all()
    assert not np.allclose(plain, unit)


def test_old_folder_without_the_new_keys_loads_with_the_old_behaviour(tiny_encoder, tmp_path):
    model = train_qsm(tiny_encoder, planted_rows(8), dataclasses.replace(CFG, epochs=1), tmp_path / "m", seed=0)
    cfg_file = tmp_path / "m" / "qsm_config.json"
    cfg = json.loads(cfg_file.read_text())
    del cfg["normalize"]  # as written before the option existed
    cfg_file.write_text(json.dumps(cfg))
    old = QualityModel.load(tmp_path / "m")
    assert old.normalize is False
    np.testing.assert_allclose(old.score(INSTR, RESP), model.score(INSTR, RESP), rtol=1e-5, atol=1e-6)
    cfg["normalize"] = "yes"
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(DataError, match="normalize"):
        QualityModel.load(tmp_path / "m")


def test_cross_folder_without_its_head_is_refused(tiny_encoder, tmp_path):
    from mdaq.errors import MissingAssetError

    train_qsm(tiny_encoder, planted_rows(8), dataclasses.replace(CFG, kind="cross", epochs=1), tmp_path / "c", seed=0)
    (tmp_path / "c" / "qsm_head.safetensors").unlink()
    with pytest.raises(MissingAssetError, match="head"):
        QualityModel.load(tmp_path / "c")


# ---- length-balanced training pairs ------------------------------------------------------------------------------


def test_length_balance_draws_the_requested_share():
    by_lang = {"fr": _mixed_rows(60, "fr"), "de": _mixed_rows(60, "de"), "ko": _mixed_rows(60, "ko")}
    cfg = dataclasses.replace(CFG, max_pairs_per_lang=12, length_balance=0.5, unseen_langs=("ko",))
    rows = select_training_rows(by_lang, cfg, seed=0)
    assert len(rows) == 24 and {r["lang"] for r in rows} == {"fr", "de"}
    for lang in ("fr", "de"):
        mine = [r for r in rows if r["lang"] == lang]
        assert sum(is_not_longer(r) for r in mine) == 6
        assert len({r["source_index"] for r in mine}) == 12  # no pair twice
        positions = [r["position"] for r in mine]
        assert positions == sorted(positions)
    assert rows == select_training_rows(by_lang, cfg, seed=0)
    assert rows != select_training_rows(by_lang, cfg, seed=1)
    plain = select_training_rows(by_lang, dataclasses.replace(cfg, length_balance=0.0), seed=0)
    for lang in ("de", "fr"):  # length_balance 0 draws exactly as before the option existed
        keep = np.sort(lang_rng(0, lang, "qsm-train-subsample").choice(60, 12, replace=False))
        assert [r for r in plain if r["lang"] == lang] == [by_lang[lang][i] for i in keep]


def test_length_balance_fills_a_short_side_from_the_other():
    rows = _mixed_rows(30, "fr", every=10)  # 3 pairs where the revision is not longer
    cfg = dataclasses.replace(CFG, max_pairs_per_lang=10, length_balance=0.5, unseen_langs=())
    picked = select_training_rows({"fr": rows}, cfg, seed=0)
    assert len(picked) == 10 and sum(is_not_longer(r) for r in picked) == 3
    everything = select_training_rows({"fr": rows}, dataclasses.replace(cfg, max_pairs_per_lang=100), seed=0)
    assert everything == rows


def test_length_balance_needs_a_cap():
    with pytest.raises(ValueError, match="max_pairs_per_lang"):
        select_training_rows(
            {"fr": planted_rows()}, dataclasses.replace(CFG, max_pairs_per_lang=0, length_balance=0.5), 0
        )


def test_length_balanced_training_records_its_share(tiny_encoder, tmp_path):
    cfg = dataclasses.replace(CFG, epochs=1, max_pairs_per_lang=8, length_balance=0.5, unseen_langs=(), val_share=0.0)
    rows = select_training_rows({"fr": _mixed_rows(24, "fr")}, cfg, seed=0)
    model = train_qsm(tiny_encoder, rows, cfg, tmp_path / "b", seed=0)
    assert model.train_record_["share_rev_not_longer"] == 0.5
    np.testing.assert_allclose(
        QualityModel.load(tmp_path / "b").score(INSTR, RESP), model.score(INSTR, RESP), rtol=1e-5, atol=1e-6
    )


# ---- early stopping ---------------------------------------------------------------------------------------------


def test_validation_split_is_per_language_disjoint_and_seeded():
    rows = planted_rows(20, "fr") + planted_rows(10, "de")
    train, val = split_validation(rows, 0.2, seed=0)
    assert sorted(r["lang"] for r in val) == ["de", "de", "fr", "fr", "fr", "fr"]
    assert len(train) + len(val) == len(rows)
    assert not {(r["lang"], r["source_index"]) for r in train} & {(r["lang"], r["source_index"]) for r in val}
    assert split_validation(rows, 0.2, seed=0) == (train, val)
    assert split_validation(rows, 0.2, seed=1)[1] != val
    assert split_validation(rows, 0.0, seed=0) == (rows, [])
    with pytest.raises(ValueError, match="no validation pair"):
        split_validation(planted_rows(2), 0.1, seed=0)
    with pytest.raises(ValueError, match="0.5"):
        split_validation(rows, 0.6, seed=0)


class _Tiny:
    """Just enough of a QualityModel for EarlyStopping: an encoder module and no head."""

    def __init__(self) -> None:
        import torch

        self.model_, self.head_ = torch.nn.Linear(2, 1), None


def test_early_stopping_keeps_and_restores_the_best_epoch(tmp_path):
    import torch

    model, stopper = _Tiny(), EarlyStopping(patience=2)
    weights = []
    for loss in (1.0, 0.5, 0.7, 0.6):
        with torch.no_grad():
            model.model_.weight.add_(1.0)
        weights.append(model.model_.weight.detach().clone())
        stop = stopper.update(model, loss)
        assert stop == (loss == 0.6)  # two epochs after the best (epoch 2)
    assert stopper.best_epoch == 2 and stopper.stopped
    stopper.restore(model)
    assert torch.equal(model.model_.weight, weights[1])
    stopper.save(tmp_path)
    again = EarlyStopping(patience=2)
    again.load(tmp_path, stopper.state())
    assert again.state() == stopper.state() and torch.equal(again.best_["encoder.weight"], weights[1])
    assert not EarlyStopping(patience=0).update(model, 1.0)


def test_early_stopping_training_records_validation_and_resumes(tiny_encoder, tmp_path):
    cfg = dataclasses.replace(CFG, epochs=3, val_share=0.25, patience=1)
    rows = planted_rows(16)
    full = train_qsm(tiny_encoder, rows, cfg, tmp_path / "full", seed=3, ckpt_dir=tmp_path / "ck_full")
    rec = full.train_record_
    assert rec["n_pairs"] == 12 and rec["n_val_pairs"] == 4
    assert 1 <= rec["best_epoch"] <= rec["epochs_run"] == len(rec["val_losses"]) <= 3
    assert rec["val_losses"][rec["best_epoch"] - 1] == min(rec["val_losses"])
    with pytest.raises(Interrupted):
        train_qsm(tiny_encoder, rows, cfg, tmp_path / "res", seed=3, ckpt_dir=tmp_path / "ck", stop_after=3)
    resumed = train_qsm(tiny_encoder, rows, cfg, tmp_path / "res", seed=3, ckpt_dir=tmp_path / "ck")
    np.testing.assert_allclose(full.score(INSTR, RESP), resumed.score(INSTR, RESP), rtol=1e-5, atol=1e-6)
    for key in ("losses", "val_losses", "best_epoch", "stopped_early"):
        assert full.train_record_[key] == resumed.train_record_[key]
    again = train_qsm(tiny_encoder, rows, cfg, tmp_path / "again", seed=3, ckpt_dir=tmp_path / "ck")  # finished
    np.testing.assert_allclose(again.score(INSTR, RESP), full.score(INSTR, RESP), rtol=1e-5, atol=1e-6)


# ---- params ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "qsm, field",
    [
        ({"kind": "bi"}, "qsm.kind"),
        ({"length_balance": 0.5, "max_pairs_per_lang": 0}, "qsm.length_balance"),
        ({"length_balance": 1.5}, "qsm.length_balance"),
        ({"val_share": 0.6}, "qsm.val_share"),
        ({"patience": -1}, "qsm.patience"),
        ({"normalize": "yes"}, "qsm.normalize"),
    ],
)
def test_bad_variant_params_are_refused(qsm, field, tmp_path):
    import yaml

    data = yaml.safe_load((REPO / "profiles" / "default.yaml").read_text(encoding="utf-8"))
    data["qsm"].update(qsm)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_params(path)
    assert field in str(err.value)
