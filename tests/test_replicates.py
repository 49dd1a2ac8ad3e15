"""Replicates: one selection in any order trains the same adapter, byte for byte; seeds differ; a finished run is
not trained again."""

from __future__ import annotations

import hashlib
import json

import pytest

from mdaq import Sample
from mdaq.config import TrainConfig

torch = pytest.importorskip("torch")
CFG = TrainConfig(lora_r=4, lr=5e-3, epochs=2, batch_size=4, max_seq_len=48, warmup_ratio=0.0, lora_dropout=0.0)


def _samples(n=10):
    return [Sample.create("fr", f"Répète le mot {i}.", "", f"mot {i} " * 3) for i in range(n)]


def _digest(folder):
    return {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.iterdir())
        if f.name != "train_record.json"  # timings differ from run to run
    }


def test_order_of_a_selection_does_not_change_the_adapter(tiny_lm, tmp_path):
    from mdaq.training.lora import train_lora

    a = train_lora(tiny_lm, _samples(), CFG, tmp_path / "a", seed=3)
    b = train_lora(tiny_lm, _samples()[::-1], CFG, tmp_path / "b", seed=3)
    c = train_lora(tiny_lm, _samples(), CFG, tmp_path / "c", seed=4)
    assert _digest(a) == _digest(b)  # byte-identical adapter files
    assert _digest(a)["adapter_model.safetensors"] != _digest(c)["adapter_model.safetensors"]  # another seed
    rec = json.loads((a / "train_record.json").read_text())
    assert rec["share_truncated"] == 0.0 and rec["fingerprint"]


def test_adapter_config_lists_target_modules_sorted(tiny_lm, tmp_path):
    """peft keeps target_modules in a set, so their order in adapter_config.json (and the file's bytes) followed
    PYTHONHASHSEED from one process to the next; the saved file lists them sorted."""
    from mdaq.training.lora import sort_adapter_config, train_lora

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "adapter_config.json").write_text(json.dumps({"target_modules": ["v_proj", "q_proj", "k_proj"]}))
    sort_adapter_config(tmp_path / "x")
    assert json.loads((tmp_path / "x" / "adapter_config.json").read_text())["target_modules"] == [
        "k_proj",
        "q_proj",
        "v_proj",
    ]
    out = train_lora(
        tiny_lm, _samples(4), TrainConfig(lora_r=2, epochs=1, batch_size=4, max_seq_len=32), tmp_path / "a"
    )
    modules = json.loads((out / "adapter_config.json").read_text())["target_modules"]
    assert modules == sorted(modules) and len(modules) == 4


def test_a_finished_run_is_not_trained_again(tiny_lm, tmp_path, caplog):
    from mdaq.training.lora import train_lora

    out = train_lora(tiny_lm, _samples(), CFG, tmp_path / "a", seed=0)
    before = (out / "train_record.json").read_text()
    with caplog.at_level("INFO", logger="mdaq.training.lora"):
        train_lora(tiny_lm, _samples()[::-1], CFG, out, seed=0)
    assert "not retrained" in caplog.text and (out / "train_record.json").read_text() == before
    train_lora(tiny_lm, _samples(), CFG, out, seed=1)  # another run into the same folder: trained
    assert json.loads((out / "train_record.json").read_text())["seed"] == 1
