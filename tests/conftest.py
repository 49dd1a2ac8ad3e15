"""Shared fixtures: a toy multilingual pool, synthetic MIDB files, the real mirror (when present), a tiny LM."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mdaq import Pool, Sample

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]

TOY = {
    "de": [("Nenne eine Farbe.", "Blau."), ("Was ist 2+2?", "Vier."), ("Übersetze 'Haus'.", "house")],
    "ja": [("色を一つ挙げてください。", "青です。"), ("2+2は？", "4です。"), ("「家」を英訳して。", "house")],
    "no": [("Nevn en farge.", "Blå."), ("Hva er 2+2?", "Fire."), ("Oversett 'hus'.", "house")],
}


@pytest.fixture
def toy_samples() -> list[Sample]:
    """30 samples in 3 languages (one non-Latin script, one with the YAML-trap code "no")."""
    out = []
    for lang, rows in TOY.items():
        for k in range(10):
            instr, resp = rows[k % len(rows)]
            out.append(Sample.create(lang, f"{instr} ({k})", "", resp * (k + 1), source="toy", meta={"k": k}))
    return out


@pytest.fixture
def toy_pool(toy_samples) -> Pool:
    """The German part of the toy samples as a pool without features."""
    return Pool(lang="de", samples=[s for s in toy_samples if s.lang == "de"])


def midb_record(i: int, lang: str, revised_same: bool = False) -> dict:
    """A synthetic MIDB revision record whose content encodes its source index (for alignment checks)."""
    raw = f"raw answer {i} in {lang} with number {1000 + i}"
    return {
        "Raw Instruction": f"instruction {i} {lang}", "Raw Input": "", "Raw Response": raw,
        "Revised Instruction": f"instruction {i} {lang}", "Revised Input": "",
        "Revised Response": raw if revised_same else f"revised answer {i} in {lang}, longer, number {1000 + i}",
        "Distance": 10,
    }  # fmt: skip


@pytest.fixture
def synthetic_midb(tmp_path) -> Path:
    """A fake MIDB folder: French complete (2,301 items), German missing source item 191 like the real file."""
    root = tmp_path / "midb"
    (root / "MIDB_train").mkdir(parents=True)
    fr = [midb_record(i, "fr", revised_same=(i == 7)) for i in range(2301)]
    de = [midb_record(i, "de") for i in range(2301) if i != 191]
    (root / "MIDB_train" / "French.json").write_text(json.dumps(fr), encoding="utf-8")
    (root / "MIDB_train" / "German.json").write_text(json.dumps(de), encoding="utf-8")
    return root


def real_mirror() -> Path | None:
    """The offline MIDB mirror named by MDAQ_DATA_MIRROR, or the shared one beside the repo, if present."""
    for cand in (os.environ.get("MDAQ_DATA_MIRROR"), REPO.parent / "shared" / "data" / "midb"):
        if cand and (Path(cand) / "MIDB_train" / "French.json").is_file():
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def midb_mirror() -> Path:
    """Real MIDB mirror; tests that need it are skipped (with a reason) on machines without one."""
    path = real_mirror()
    if path is None:
        pytest.skip("no MIDB mirror: set MDAQ_DATA_MIRROR")
    return path


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    """A tiny random Llama with the real SmolLM2 tokenizer, built once per session."""
    from mdaq.assets import build_asset

    return build_asset("tiny-llama", tmp_path_factory.mktemp("base") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    """A tiny random BERT with the real multilingual-e5 tokenizer, built once per session."""
    from mdaq.assets import build_asset

    return build_asset("tiny-bert", tmp_path_factory.mktemp("base") / "tiny-bert")


def planted_rows(n: int = 24, lang: str = "fr") -> list[dict]:
    """Revision rows whose revised response echoes the instruction's words and whose raw one is unrelated."""
    topics = ["chat noir", "montagne bleue", "café chaud", "train rapide", "soleil rouge", "livre ancien"]
    rows = []
    for i in range(n):
        t = topics[i % len(topics)]
        rows.append({
            "lang": lang, "position": i, "source_index": i, "raw_instruction": f"Décris {t} {i}.",
            "raw_input": "", "raw_response": f"zq{i} xv{i} wk{i} pl{i}", "revised_instruction": f"Décris {t} {i}.",
            "revised_input": "", "revised_response": f"{t} {i} : {t}, {t}.", "distance": 10 + i,
        })  # fmt: skip
    return rows
