"""CaR ranks with its own scorer: the regression model's scores reach Pool.quality for `car` only, and the scorer is
trained only when a method of the profile needs it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mdaq import SELECTORS
from mdaq.config import FeaturesConfig, QSMConfig
from mdaq.errors import MissingAssetError
from mdaq.features.pool import load_pool, score_regression, scorer_needed, write_features
from mdaq.io import read_json, write_samples
from mdaq.quality.train import skip_training, train_qsm
from mdaq.types import Sample

from .conftest import planted_rows

CFG = QSMConfig(lr=2e-3, epochs=2, batch_size=8, max_len=32, warmup_ratio=0.0, freeze_embeddings=False)


def test_each_method_names_its_scorer():
    assert SELECTORS.get("car").scorer == "regression"
    assert {SELECTORS.get(m).scorer for m in ("mdaq_das", "quality_topk", "mmr", "deita")} == {"qsm"}
    assert scorer_needed("regression", ["random", "car"]) and not scorer_needed("regression", ["mdaq_das", "full"])
    assert scorer_needed("qsm", ["mdaq_das"]) and not scorer_needed("qsm", ["random", "oracle_raw"])


def test_regression_scores_reach_the_pool_of_car_only(tiny_encoder, tmp_path):
    model = train_qsm(tiny_encoder, planted_rows(), dataclasses.replace(CFG, kind="regression"), tmp_path / "car")
    samples = [Sample.create("fr", f"Décris {w}.", "", f"{w} " * (i + 1)) for i, w in enumerate("abcdef")]
    write_samples(tmp_path / "pool.jsonl", samples)
    reg = score_regression(tmp_path / "pool.jsonl", tmp_path / "car", FeaturesConfig(batch_size=4), device="cpu")
    np.testing.assert_allclose(reg, model.score([s.instruction for s in samples], [s.output for s in samples]), 1e-5)
    qsm_scores, emb = np.arange(6.0), np.eye(6, 4)
    write_features(tmp_path / "f", qsm_scores, emb, quality_regression=reg)
    car_pool = load_pool("fr", tmp_path / "pool.jsonl", tmp_path / "f", scorer=SELECTORS.get("car").scorer)
    das_pool = load_pool("fr", tmp_path / "pool.jsonl", tmp_path / "f", scorer=SELECTORS.get("mdaq_das").scorer)
    np.testing.assert_allclose(car_pool.quality, reg, rtol=1e-6)
    np.testing.assert_array_equal(das_pool.quality, qsm_scores.astype(np.float32))
    write_features(tmp_path / "f", qsm_scores, emb)  # a profile without car: the regression scores are removed
    with pytest.raises(MissingAssetError, match="car_scorer"):
        load_pool("fr", tmp_path / "pool.jsonl", tmp_path / "f", scorer="regression")
    with pytest.raises(ValueError, match="regression scorer"):  # the triplet QSM is not CaR's scorer
        train_qsm(tiny_encoder, planted_rows(8), CFG, tmp_path / "qsm")
        score_regression(tmp_path / "pool.jsonl", tmp_path / "qsm", FeaturesConfig(), device="cpu")


def test_an_unneeded_scorer_is_not_trained(tmp_path):
    (tmp_path / "car").mkdir()
    (tmp_path / "car" / "model.safetensors").write_text("stale")  # a scorer trained by an earlier run
    (tmp_path / "car" / "qsm_config.json").write_text("{}")
    record = skip_training(tmp_path / "car", "no method ranks with it", ckpt_dir=tmp_path / "ck")
    assert record["status"] == "skipped" and [p.name for p in (tmp_path / "car").iterdir()] == ["train_record.json"]
    assert read_json(tmp_path / "car" / "train_record.json")["reason"] == "no method ranks with it"
    assert (tmp_path / "ck").is_dir()  # a declared output of the stage, empty
