"""Shared fixtures: a toy multilingual pool, synthetic MIDB files, the real mirror (when present), a tiny LM."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdaq import Pool, Sample
from mdaq.config import QSMConfig
from tests.judge_stub import KEY_ENV, StubServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]

# pytest-xdist workers (scripts/test.sh runs the suite on 2): the cores are split between them, so that torch's thread
# pools do not oversubscribe the machine. Set before torch is imported; the subprocesses a test starts inherit it.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1 and not (os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS")):
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // _WORKERS))

# The end-to-end pipeline test is the longest (minutes): collected first, it starts at once on one worker while the
# others take the unit tests, instead of ending the run alone.
FIRST = ("tests/test_pipeline_smoke.py",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(FIRST))  # stable: the rest keep their order


# `precision: auto` in tests: "slow" (default) makes every CPU look like one without fast bf16, so `auto` is fp32 and
# the suite computes the same numbers, at the same speed, on AMX and AVX2-only machines; "fast" makes every CPU look
# like an AMX one (run it there to exercise the bf16 paths); "real" uses the probe as it is. Subprocesses (the smoke
# pipeline) always see the real probe.
BF16_PROBE = os.environ.get("MDAQ_TEST_BF16_PROBE", "slow")
if BF16_PROBE not in ("slow", "fast", "real"):
    raise ValueError(f"MDAQ_TEST_BF16_PROBE must be slow, fast or real, not {BF16_PROBE!r}")


def _real_fast_bf16() -> bool:
    from mdaq.hardware import cpu_fast_bf16

    return cpu_fast_bf16()[0]


# Tests that run bf16 arithmetic on the CPU: skipped where it would be emulated (~100x slower than fp32).
needs_fast_bf16 = pytest.mark.skipif(
    BF16_PROBE != "fast" and not _real_fast_bf16(),
    reason="bf16 arithmetic is emulated on this CPU (no AMX / AVX512-BF16): mdaq.hardware",
)


@pytest.fixture(autouse=True)
def _bf16_probe(monkeypatch):
    """Apply ``MDAQ_TEST_BF16_PROBE`` to :func:`mdaq.hardware.cpu_fast_bf16` for every test."""
    if BF16_PROBE == "real":
        return
    from mdaq import hardware

    fast = BF16_PROBE == "fast"
    monkeypatch.setattr(hardware, "cpu_fast_bf16", lambda info=None: (fast, f"test probe: {BF16_PROBE}"))


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
        "Raw Instruction": f"instruction {i} {lang}",
        "Raw Input": "",
        "Raw Response": raw,
        "Revised Instruction": f"instruction {i} {lang}",
        "Revised Input": "",
        "Revised Response": raw if revised_same else f"revised answer {i} in {lang}, longer, number {1000 + i}",
        "Distance": 10,
    }


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


def _tiny_asset(name: str, tmp_path_factory) -> Path:
    """``name`` built once per session, or taken from ``MDAQ_TEST_ASSETS/name`` when that holds a finished build
    (a machine that cannot build assets, e.g. a lent GPU machine: ``scripts/device_check.sh``)."""
    from mdaq.models.assets import MANIFEST, build_asset

    prebuilt = os.environ.get("MDAQ_TEST_ASSETS")
    if prebuilt and (Path(prebuilt) / name / MANIFEST).is_file():
        return Path(prebuilt) / name
    return build_asset(name, tmp_path_factory.mktemp("base") / name)


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    """A tiny random Llama with the real SmolLM2 tokenizer, built once per session."""
    return _tiny_asset("tiny-llama", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    """A tiny random BERT with the real multilingual-e5 tokenizer, built once per session."""
    return _tiny_asset("tiny-bert", tmp_path_factory)


# A tiny QSM training config: no validation split (the profile default holds out 10%), so tests count every pair.
QSM_TEST_CFG = QSMConfig(
    lr=2e-3,
    epochs=4,
    batch_size=8,
    max_len=32,
    warmup_ratio=0.0,
    checkpoint_every=2,
    freeze_embeddings=False,
    val_share=0.0,
)


def planted_rows(n: int = 24, lang: str = "fr") -> list[dict]:
    """Revision rows whose revised response echoes the instruction's words and whose raw one is unrelated."""
    topics = ["chat noir", "montagne bleue", "café chaud", "train rapide", "soleil rouge", "livre ancien"]
    rows = []
    for i in range(n):
        t = topics[i % len(topics)]
        rows.append(
            {
                "lang": lang,
                "position": i,
                "source_index": i,
                "raw_instruction": f"Décris {t} {i}.",
                "raw_input": "",
                "raw_response": f"zq{i} xv{i} wk{i} pl{i}",
                "revised_instruction": f"Décris {t} {i}.",
                "revised_input": "",
                "revised_response": f"{t} {i} : {t}, {t}.",
                "distance": 10 + i,
            }
        )
    return rows


def write_run(root, method, lang, params, correct, *, seed=0, role=None, n_tokens=10, **metrics):
    """A run folder ``root/<method>/<lang>/s<seed>/`` as the ``run`` stage writes it: ``items.csv`` with one
    held-out pair per entry of ``correct`` (1, 0 or 0.5; margins +1 / -1 / 0) and a ``metrics.json`` with the current
    provenance. Returns the folder."""
    import numpy as np
    import pandas as pd

    from mdaq.io import ITEM_COLUMNS, write_items, write_json
    from mdaq.provenance import provenance

    correct = np.asarray(correct, dtype=float)
    n = len(correct)
    margin = np.where(correct == 1, 1.0, np.where(correct == 0, -1.0, 0.0))
    items = pd.DataFrame(
        {
            "lang": lang,
            "item": [f"{lang}-{i}" for i in range(n)],
            "source_index": np.arange(n),
            "chosen_lp": -2.0 * n_tokens - margin,
            "chosen_n": n_tokens,
            "rejected_lp": -2.0 * n_tokens,
            "rejected_n": n_tokens,
            "margin": margin / n_tokens,
            "correct": correct,
            "prompt_truncated": False,
            "chosen_truncated": False,
            "rejected_truncated": False,
        },
        columns=list(ITEM_COLUMNS),
    )
    run = Path(root) / method / lang / f"s{seed}"
    write_items(run / "items.csv", items)
    role = role or {"base": "base", "full": "reference"}.get(method, "control" if "oracle" in method else "method")
    record = {"method": method, "lang": lang, "seed": seed, "role": role, "n_selected": 10, "share_revised": 0.5}
    record |= {"selector_version": "1", "base_model": "tiny", **provenance(params, method), **metrics}
    write_json(run / "metrics.json", record)
    return run


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubServer]:
    """A loopback OpenAI-compatible server (tests/judge_stub.py), with proxies and the test key unset."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", KEY_ENV):
        monkeypatch.delenv(var, raising=False)
    stub = StubServer()
    yield stub
    stub.close()
