"""IFD in the sharded feature engine (`mdaq features --ifd-model`, `select --engine ... --method ifd`): the local
engine's IFD columns equal `ifd_scores` in memory, beside or instead of the QSM features; a killed run resumes only
its missing shards; the fingerprint covers the LM and the IFD settings; the selection from the shards equals the
in-memory `ifd` selection; a missing --ifd-model is named. The Ray engine's IFD is in tests/test_ray_features.py."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from mdaq.cli import main
from mdaq.config import IFDConfig
from mdaq.errors import DataError
from mdaq.features.engine import compute_feature_shards
from mdaq.features.ifd import ifd_scores
from mdaq.features.spec import FeatureSpec, fingerprint
from mdaq.io import read_jsonl, write_samples
from mdaq.models.lm import load_causal_lm
from mdaq.shards import iter_pool_samples
from mdaq.shards.features import iter_feature_shards, read_feature_manifest
from tests.feature_pool import kill_on_third_shard, read_all, save_tiny_qsm, write_pool

IFD = {"ifd_max_seq_len": 48, "ifd_batch_size": 4, "ifd_precision": "fp32"}
IFD_FLAGS = ["--ifd-max-seq-len", "48", "--ifd-batch-size", "4", "--ifd-precision", "fp32"]


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    """24 German rows in 4 shards."""
    return write_pool(tmp_path_factory.mktemp("pool") / "de", 24, 6, langs=("de",))


def _spec(lm: Path, **kw) -> FeatureSpec:
    # one torch thread: on a shared 2-core machine two OpenMP threads spin against other jobs
    return FeatureSpec(ifd_model=str(lm), chunk_rows=5, threads=1, **{**IFD, **kw})


def _ifd_columns(folder: Path) -> dict[str, np.ndarray]:
    blocks = list(iter_feature_shards(folder))
    names = ("ids", "ifd", "loss_conditional", "loss_unconditional")
    return {name: np.concatenate([getattr(b, name) for b in blocks]) for name in names}


@pytest.fixture(scope="module")
def ifd_folder(tiny_lm, pool, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ifd") / "feat"
    compute_feature_shards(pool, out, _spec(tiny_lm))
    return out


def test_local_engine_ifd_equals_ifd_scores_in_memory(tiny_lm, pool, ifd_folder):
    manifest = read_feature_manifest(ifd_folder)
    assert (manifest["n_rows"], manifest["n_shards"], manifest["dim"]) == (24, 4, None)
    assert list(manifest["columns"]) == ["id", "ifd", "loss_conditional", "loss_unconditional"]
    assert {p["ifd_precision"] for p in manifest["record"]["workers_provenance"]} == {"fp32"}
    got = _ifd_columns(ifd_folder)
    samples = list(iter_pool_samples(pool))
    assert list(got["ids"]) == [s.id for s in samples]
    tok, model = load_causal_lm(tiny_lm)
    want = ifd_scores(model, tok, samples, IFDConfig(max_seq_len=48, batch_size=4, precision="fp32"))
    assert np.isfinite(want["ifd"]).all()
    for name in ("ifd", "loss_conditional", "loss_unconditional"):  # chunks of 5 vs one pass: rounding only
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_ifd_beside_the_qsm_features_equals_each_alone(tiny_lm, tiny_encoder, pool, ifd_folder, tmp_path):
    qsm = save_tiny_qsm(tiny_encoder, tmp_path / "qsm")
    scores = {"qsm_dir": str(qsm), "encoder": str(qsm), "embed_max_len": 32, "batch_size": 8, "precision": "fp32"}
    both = compute_feature_shards(pool, tmp_path / "both", _spec(tiny_lm, **scores))
    assert list(both["columns"]) == ["id", "quality", "embedding", "ifd", "loss_conditional", "loss_unconditional"]
    compute_feature_shards(pool, tmp_path / "qsm_only", FeatureSpec(**scores, chunk_rows=5, threads=1))
    ids, quality, emb = read_all(tmp_path / "both")
    ids0, quality0, emb0 = read_all(tmp_path / "qsm_only")
    assert np.array_equal(ids, ids0) and np.array_equal(quality, quality0) and np.array_equal(emb, emb0)
    got, alone = _ifd_columns(tmp_path / "both"), _ifd_columns(ifd_folder)
    for name in ("ifd", "loss_conditional", "loss_unconditional"):
        assert np.array_equal(got[name], alone[name])


def test_killed_ifd_run_resumes_only_missing_shards_and_fingerprint_covers_lm_and_settings(
    tiny_lm, pool, ifd_folder, tmp_path, monkeypatch
):
    spec = _spec(tiny_lm)
    kill_on_third_shard(monkeypatch, tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        compute_feature_shards(pool, tmp_path / "out", spec)
    done = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("part-*.parquet")}
    assert sorted(done) == ["part-00000.parquet", "part-00001.parquet"]
    monkeypatch.undo()  # the real featurize again
    manifest = compute_feature_shards(pool, tmp_path / "out", spec)
    assert (manifest["n_computed"], manifest["n_kept"]) == (2, 2)
    assert {n: (tmp_path / "out" / n).stat().st_mtime_ns for n in done} == done  # kept, not rewritten
    got, want = _ifd_columns(tmp_path / "out"), _ifd_columns(ifd_folder)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    # the batch size changes only rounding: same fingerprint, everything kept
    assert compute_feature_shards(pool, tmp_path / "out", _spec(tiny_lm, ifd_batch_size=2))["n_kept"] == 4
    for other in (_spec(tiny_lm, ifd_max_seq_len=64), _spec(tiny_lm, ifd_precision="bf16")):
        assert fingerprint(other) != fingerprint(spec)
        with pytest.raises(DataError, match="features of another model or settings"):
            compute_feature_shards(pool, tmp_path / "out", other)
    lm2 = tmp_path / "lm2"  # the same LM with one file changed
    lm2.mkdir()
    for f in tiny_lm.iterdir():
        if f.is_file():
            (lm2 / f.name).write_bytes(f.read_bytes())
    (lm2 / "generation_config.json").write_text("{}", encoding="utf-8")
    assert fingerprint(_spec(lm2)) != fingerprint(spec)


def _run(argv: list[str]) -> dict:
    """``main(argv)``, which must succeed; its JSON line."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    return json.loads(stdout.getvalue().strip().splitlines()[-1])


def test_select_engine_ifd_selects_what_the_in_memory_ifd_selector_selects(tiny_lm, pool, ifd_folder, tmp_path):
    method = ["--method", "ifd", "--budget", "7", "--params", '{"max_ifd": 1.5}']
    engine = ["select", "--pool", str(pool), "--engine", "local", "--ifd-model", str(tiny_lm), *IFD_FLAGS]
    summary = _run([*engine, *method, "--threads", "1", "--chunk-rows", "5", "--out", str(tmp_path / "eng.jsonl")])
    assert (summary["lang"], summary["n_computed"], summary["n_pool"], summary["n_selected"]) == ("de", 4, 24, 7)
    write_samples(tmp_path / "pool.jsonl", iter_pool_samples(pool))
    memory = ["select", "--pool", str(tmp_path / "pool.jsonl"), "--ifd-model", str(tiny_lm), *IFD_FLAGS]
    _run([*memory, *method, "--out", str(tmp_path / "mem.jsonl")])
    streamed = ["select", "--features", str(ifd_folder), "--lang", "de", *method]
    _run([*streamed, "--out", str(tmp_path / "two.jsonl")])
    rows = read_jsonl(tmp_path / "eng.jsonl")
    mem = read_jsonl(tmp_path / "mem.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in mem] and [r["index"] for r in rows] == [
        r["index"] for r in mem
    ]
    assert rows == read_jsonl(tmp_path / "two.jsonl")


def test_ifd_options_are_refused_clearly(tiny_lm, pool, tmp_path, capsys):
    out = tmp_path / "sel.jsonl"
    engine = ["select", "--pool", str(pool), "--engine", "local", "--method", "ifd", "--budget", "3"]
    cases = [
        ([*engine, "--out", str(out)], "error: --ifd-model: required with --engine for ifd"),
        ([*engine, "--ifd-model", str(tiny_lm), "--qsm", str(tiny_lm), "--out", str(out)], "--encoder: required"),
        ([*engine, "--ifd-model", str(tmp_path), "--out", str(out)], "(--ifd-model) not found (no config.json)"),
        (["features", "--pool", str(pool), "--out", str(tmp_path / "f")], "error: --qsm: required (with --encoder)"),
        (["features", "--pool", str(pool), "--qsm", str(tiny_lm), "--out", str(tmp_path / "f")], "--encoder"),
        (
            ["select", "--pool", str(pool), "--method", "random", "--budget", "2", "--ifd-batch-size", "2"]
            + ["--out", str(out)],
            "error: --ifd-batch-size: only with --ifd-model",
        ),
    ]
    for argv, expected in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("error: ") and expected in err, (argv, err)
    assert not out.exists() and not Path(f"{out}.features").exists() and not (tmp_path / "f").exists()
