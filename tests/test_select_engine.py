"""`mdaq select --pool SHARDS --engine local|ray`: a sharded pool's feature shards computed (or resumed) and selected
from in one command. Here with the in-process engine; the Ray engine's equality with the two-command path is in
tests/test_ray_features.py, which starts Ray once for its module."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from mdaq.cli import main
from mdaq.io import read_jsonl
from mdaq.shards import iter_pool_samples
from tests.feature_pool import save_tiny_qsm, write_pool

# one torch thread: on a shared 2-core machine two OpenMP threads spin against other jobs
SETTINGS = ["--embed-max-len", "32", "--batch-size", "8", "--precision", "fp32", "--chunk-rows", "8", "--threads", "1"]
DAS = ["--method", "mdaq_das", "--budget", "7", "--seed", "3", "--params", '{"n_clusters": 3}']


@pytest.fixture(scope="module")
def tiny_qsm(tiny_encoder, tmp_path_factory) -> Path:
    return save_tiny_qsm(tiny_encoder, tmp_path_factory.mktemp("qsm") / "qsm")


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    """30 German rows in 5 shards."""
    return write_pool(tmp_path_factory.mktemp("pool") / "de", 30, 6, langs=("de",))


def _models(qsm: Path) -> list[str]:
    return ["--qsm", str(qsm), "--encoder", str(qsm), *SETTINGS]


def _run(argv: list[str]) -> dict:
    """``main(argv)``, which must succeed; its JSON line."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    return json.loads(stdout.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def first_run(tiny_qsm, pool, tmp_path_factory) -> tuple[Path, dict]:
    """One `select --engine local` run with --write-records, its features in the default folder beside --out."""
    out = tmp_path_factory.mktemp("sel") / "sel.jsonl"
    argv = ["select", "--pool", str(pool / "*.parquet"), "--engine", "local", *_models(tiny_qsm), *DAS]
    return out, _run([*argv, "--out", str(out), "--write-records", str(out.with_name("records.jsonl"))])


def test_select_engine_local_writes_selection_and_records(first_run, pool):
    out, summary = first_run
    assert (summary["engine"], summary["lang"], summary["n_pool"], summary["n_selected"]) == ("local", "de", 30, 7)
    assert (summary["n_shards"], summary["n_computed"], summary["n_kept"]) == (5, 5, 0)
    assert summary["features"] == f"{out}.features" and (Path(f"{out}.features") / "_manifest.json").is_file()
    assert summary["features_seconds"] > 0 and summary["select_seconds"] >= 0
    rows = read_jsonl(out)
    assert [r["rank"] for r in rows] == list(range(7)) and {r["lang"] for r in rows} == {"de"}
    assert {r["part"] for r in rows} <= {"quality", "diversity", "fill"}
    by_id = {s.id: s for s in iter_pool_samples(pool)}
    records = read_jsonl(out.with_name("records.jsonl"))
    assert [r["id"] for r in records] == [r["id"] for r in rows]  # exactly the selection, in rank order
    for r in records:
        s = by_id[r["id"]]
        assert r == {"instruction": s.instruction, "input": s.input, "output": s.output, "lang": "de", "id": s.id}


def test_select_engine_rerun_recomputes_only_a_deleted_feature_shard(first_run, tiny_qsm, pool, tmp_path):
    out, _ = first_run
    feat = tmp_path / "feat"
    shutil.copytree(f"{out}.features", feat)
    (feat / "part-00002.parquet").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in feat.glob("part-*.parquet")}
    argv = ["select", "--pool", str(pool), "--engine", "local", *_models(tiny_qsm), *DAS, "--lang", "de"]
    summary = _run([*argv, "--features-out", str(feat), "--out", str(tmp_path / "again.jsonl")])
    assert (summary["n_computed"], summary["n_kept"]) == (1, 4)
    assert {n: (feat / n).stat().st_mtime_ns for n in kept} == kept  # kept, not rewritten
    assert read_jsonl(tmp_path / "again.jsonl") == read_jsonl(out)


def test_select_engine_refuses_before_computing_anything(tiny_qsm, pool, tmp_path, capsys):
    out = tmp_path / "sel.jsonl"
    base = ["select", "--pool", str(pool), "--engine", "local", "--budget", "3", "--out", str(out)]
    models = ["--qsm", str(tiny_qsm), "--encoder", str(tiny_qsm)]
    cases = [
        (["--method", "mdaq_das", "--encoder", str(tiny_qsm)], "--qsm: required with --engine"),
        (["--method", "mdaq_das", "--qsm", str(tiny_qsm)], "--encoder: required with --engine"),
        (["--method", "longest", *models], "longest reads the samples' texts"),
        (["--method", "ifd", *models], "--ifd-model: required with --engine for ifd"),
        (["--method", "random", *models, "--lang", "ja"], "--lang"),
        (["--method", "random", *models, "--features", str(tmp_path)], "--features"),
        (["--method", "random", *models, "--pooled"], "--pooled"),
    ]
    for extra, expected in cases:
        assert main([*base, *extra]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and expected in err, (extra, err)
    mixed = write_pool(tmp_path / "mixed", 9, 3)  # de, ja, no
    argv = ["select", "--pool", str(mixed), "--engine", "ray", "--method", "random", "--budget", "2", *models]
    err = _error([*argv, "--out", str(out)], capsys)
    assert "holds several languages" in err and "de (3 rows)" in err
    in_memory = ["select", "--pool", str(pool), "--method", "random", "--budget", "2", "--out", str(out)]
    assert "--ray-address: only with --engine" in _error([*in_memory, "--ray-address", "auto"], capsys)
    jsonl = tmp_path / "pool.jsonl"
    jsonl.write_text("", encoding="utf-8")
    assert "needs a sharded pool" in _error([*base[:2], str(jsonl), *base[3:], "--method", "random", *models], capsys)
    assert not out.exists() and not Path(f"{out}.features").exists()


def _error(argv: list[str], capsys) -> str:
    assert main(argv) == 1
    return capsys.readouterr().err.strip()
