"""Feature shards (mdaq.shards.features, mdaq.features.engine, `mdaq features --engine local`): round trip in bounded
blocks, errors naming shard, row and field, equality with the features stage, per-shard resume, bounded memory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mdaq.cli import main
from mdaq.config import FeaturesConfig
from mdaq.errors import DataError
from mdaq.features.engine import FeatureSpec, compute_feature_shards
from mdaq.io import write_json, write_samples
from mdaq.shards import iter_pool_samples
from mdaq.shards.check import MANIFEST
from mdaq.shards.feature_write import finish_feature_folder, write_feature_shard
from mdaq.shards.features import FeatureBlock, feature_blocks, iter_feature_shards, read_feature_manifest
from mdaq.types import sample_id
from tests.feature_pool import kill_on_third_shard, read_all, save_tiny_qsm, write_pool


def _ids(n: int, start: int = 0) -> np.ndarray:
    return np.array([sample_id("de", f"i{k}", "", "o") for k in range(start, start + n)], dtype=object)


def _synthetic_folder(folder: Path, sizes=(5, 0, 9), dim=3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A feature folder written without a model: shards of ``sizes`` rows with known values."""
    rng = np.random.default_rng(0)
    entries, start = [], 0
    for k, n in enumerate(sizes):
        block = FeatureBlock(
            _ids(n, start), rng.normal(size=n).astype(np.float32), rng.normal(size=(n, dim)).astype(np.float32)
        )
        entry = write_feature_shard(
            folder / f"part-{k:05d}.parquet", [block] if n else [], dim=dim, footer={"fingerprint": "f"}, n_rows=n
        )
        entries.append({**entry, "pool_sha256": "x"})
        start += n
    finish_feature_folder(folder, entries, fingerprint="f", pool="p", dim=dim, record={})
    return read_all(folder)


def test_feature_shards_round_trip_in_bounded_blocks(tmp_path):
    ids, quality, emb = _synthetic_folder(tmp_path / "f")
    assert len(ids) == 14 and emb.shape == (14, 3) and emb.dtype == np.float32
    blocks = list(iter_feature_shards(tmp_path / "f", block_rows=4))
    assert [len(b) for b in blocks] == [4, 1, 4, 4, 1]  # blocks never cross a shard, never exceed block_rows
    factory = feature_blocks(tmp_path / "f", block_rows=4)
    for _ in range(2):  # one call per pass
        assert np.array_equal(np.concatenate([b.quality for b in factory()]), quality)
    manifest = read_feature_manifest(tmp_path / "f")
    assert manifest["n_rows"] == 14 and manifest["dim"] == 3 and [e["n_rows"] for e in manifest["shards"]] == [5, 0, 9]


def _break(folder: Path, how: str) -> None:
    manifest_path = folder / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    part = folder / "part-00002.parquet"
    if how == "missing":
        part.unlink()
    elif how == "unlisted":
        (folder / "part-00009.parquet").write_bytes(part.read_bytes())
    elif how == "n_rows":
        manifest["shards"][2]["n_rows"] = 8
        write_json(manifest_path, manifest)
    elif how == "incomplete":
        manifest["complete"] = False
        write_json(manifest_path, manifest)
    elif how == "dim":
        manifest["dim"] = 4
        write_json(manifest_path, manifest)
    elif how == "truncated":
        part.write_bytes(part.read_bytes()[:-30])
    elif how in ("nan", "duplicate"):
        block = FeatureBlock(_ids(9, 5), np.zeros(9, np.float32), np.ones((9, 3), np.float32))
        if how == "nan":
            block.embeddings[6, 1] = np.nan
        else:
            block.ids[7] = _ids(1, 2)[0]  # the id of row 2 of part-00000
        write_feature_shard(part, [block], dim=3, footer={}, n_rows=9)


@pytest.mark.parametrize(
    "how, expected",
    [
        ("missing", r"part-00002.parquet: listed in _manifest.json but missing"),
        ("unlisted", r"part-00009.parquet: not listed in _manifest.json"),
        ("n_rows", r"part-00002.parquet, field 'n_rows': 9 rows, the manifest lists 8"),
        ("incomplete", r"_manifest.json, field 'complete': incomplete"),
        ("dim", r"part-00000.parquet, field 'embedding': schema"),
        ("truncated", r"part-00002.parquet"),
        ("nan", r"part-00002.parquet, record row 6, field 'embedding': .* not finite"),
        (
            "duplicate",
            r"part-00002.parquet, record row 7, field 'id': duplicate id .*first in part-00000.parquet, row 2",
        ),
    ],
)
def test_feature_reader_errors_name_shard_row_and_field(tmp_path, how, expected):
    _synthetic_folder(tmp_path / "f")
    _break(tmp_path / "f", how)
    with pytest.raises(DataError, match=expected):
        list(iter_feature_shards(tmp_path / "f", block_rows=4))


def test_feature_shard_with_wrong_row_count_is_not_written(tmp_path):
    block = FeatureBlock(_ids(3), np.zeros(3, np.float32), np.zeros((3, 2), np.float32))
    with pytest.raises(DataError, match="computed 3 feature rows for a pool shard of 4 rows"):
        write_feature_shard(tmp_path / "part-00000.parquet", [block], dim=2, footer={}, n_rows=4)
    assert list(tmp_path.iterdir()) == []  # nor any temporary file


@pytest.fixture(scope="module")
def tiny_qsm(tiny_encoder, tmp_path_factory) -> Path:
    return save_tiny_qsm(tiny_encoder, tmp_path_factory.mktemp("qsm") / "qsm")


def _spec(qsm: Path, **kw) -> FeatureSpec:
    # one torch thread: on a shared 2-core machine, two OpenMP threads spin against other jobs (10x slower here)
    return FeatureSpec(str(qsm), str(qsm), embed_max_len=32, batch_size=8, precision="fp32", threads=1, **kw)


def test_local_engine_equals_the_features_stage(tiny_qsm, tmp_path):
    from mdaq.features.pool import compute_features

    pool = write_pool(tmp_path / "pool", 50, 12)
    manifest = compute_feature_shards(pool, tmp_path / "feat", _spec(tiny_qsm, chunk_rows=7))
    assert (manifest["n_rows"], manifest["n_shards"], manifest["n_computed"], manifest["dim"]) == (50, 5, 5, 32)
    write_samples(tmp_path / "pool.jsonl", iter_pool_samples(pool))
    cfg = FeaturesConfig(embed_max_len=32, batch_size=8, precision="fp32")
    quality, emb, _ = compute_features(tmp_path / "pool.jsonl", tiny_qsm, tiny_qsm, cfg)
    ids, q2, e2 = read_all(tmp_path / "feat")
    assert list(ids) == [s.id for s in iter_pool_samples(pool)]
    np.testing.assert_allclose(q2, quality, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(e2, emb, rtol=1e-5, atol=1e-5)


def test_interrupted_run_resumes_only_missing_shards(tiny_qsm, tmp_path, monkeypatch):
    pool = write_pool(tmp_path / "pool", 50, 10)
    spec = _spec(tiny_qsm)
    compute_feature_shards(pool, tmp_path / "ref", spec)
    reference = read_all(tmp_path / "ref")
    kill_on_third_shard(monkeypatch, tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        compute_feature_shards(pool, tmp_path / "out", spec)
    with pytest.raises(DataError, match="incomplete"):
        read_feature_manifest(tmp_path / "out")
    done = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("part-*.parquet")}
    assert sorted(done) == ["part-00000.parquet", "part-00001.parquet"]
    monkeypatch.undo()  # the real featurize again
    manifest = compute_feature_shards(pool, tmp_path / "out", spec)
    assert (manifest["n_computed"], manifest["n_kept"]) == (3, 2)
    assert {n: (tmp_path / "out" / n).stat().st_mtime_ns for n in done} == done  # kept, not rewritten
    assert not list((tmp_path / "out").glob(".*"))
    for got, want in zip(read_all(tmp_path / "out"), reference, strict=True):
        assert np.array_equal(got, want)
    # a changed pool shard is recomputed, the rest kept; another model is refused
    (pool / "part-00004.parquet").write_bytes((pool / "part-00001.parquet").read_bytes())
    manifest_path = pool / MANIFEST
    m = json.loads(manifest_path.read_text())
    m["shards"][4] = {**m["shards"][1], "name": "part-00004.parquet"}
    write_json(manifest_path, m)
    assert compute_feature_shards(pool, tmp_path / "out", spec)["n_computed"] == 1
    with pytest.raises(DataError, match="features of another model or settings"):
        compute_feature_shards(pool, tmp_path / "out", _spec(tiny_qsm).__class__(str(tiny_qsm), str(tiny_qsm)))


def test_engine_memory_is_bounded_by_chunk_rows(tiny_qsm, tmp_path, monkeypatch):
    from mdaq.features.embed import SentenceEmbedder

    pool = write_pool(tmp_path / "pool", 400, 20, width=6)
    texts = [s.instruction + s.input + s.output for s in iter_pool_samples(pool)]
    cap = sum(len(t.encode()) for t in texts) // 4  # the test's memory cap: a quarter of the pool's text
    real, seen = SentenceEmbedder.encode, []

    def watched(self, texts):
        seen.append((len(texts), pa.total_allocated_bytes()))
        return real(self, texts)

    monkeypatch.setattr(SentenceEmbedder, "encode", watched)
    before = pa.total_allocated_bytes()  # process-wide: what earlier tests in this process left allocated
    manifest = compute_feature_shards(pool, tmp_path / "feat", _spec(tiny_qsm, chunk_rows=16))
    assert manifest["n_rows"] == 400 and len(seen) == 20 * 2  # 20-row shards in chunks of 16 and 4
    assert max(n for n, _ in seen) == 16
    assert max(b for _, b in seen) - before < cap, (max(b for _, b in seen), before, cap)


def test_cli_features_local_and_bad_row(tiny_qsm, tmp_path, capsys):
    pool = write_pool(tmp_path / "pool", 20, 10)
    args = [
        "features",
        "--pool",
        str(pool / "*.parquet"),
        "--qsm",
        str(tiny_qsm),
        "--encoder",
        str(tiny_qsm),
        "--embed-max-len",
        "32",
        "--precision",
        "fp32",
    ]
    assert main([*args, "--out", str(tmp_path / "feat")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["n_rows"], out["n_shards"], out["n_computed"], out["engine"]) == (20, 2, 2, "local")
    table = pa.parquet.read_table(pool / "part-00001.parquet")
    outputs = table.column("output").to_pylist()
    outputs[3] = "changed"
    pa.parquet.write_table(
        table.set_column(table.schema.get_field_index("output"), "output", pa.array(outputs)),
        pool / "part-00001.parquet",
    )
    assert main([*args, "--out", str(tmp_path / "feat2")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after transformers' weight-loading progress bar
    assert err.startswith("error: ") and "part-00001.parquet, record row 3, field 'id'" in err, err
    assert (tmp_path / "feat2" / "part-00000.parquet").is_file()  # the good shard is done: a rerun keeps it
    assert main([*args, "--out", str(pool)]) == 1  # the output may not be the pool
    assert "refusing to overwrite an input" in capsys.readouterr().err


def test_cli_select_streams_over_a_feature_folder(tmp_path, capsys):
    """`mdaq select --features FEATURE_DIR` selects from the feature shards alone (no --pool, no texts) and writes the
    same ids as the library's streamed selection; what it cannot do is refused in one line."""
    from mdaq.selectors.streamed import run_streamed

    ids, quality, _ = _synthetic_folder(tmp_path / "feat", sizes=(30, 0, 25), dim=4)
    base = ["select", "--features", str(tmp_path / "feat"), "--budget", "6", "--lang", "de"]
    assert main([*base, "--method", "quality_topk", "--out", str(tmp_path / "top.jsonl")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "top.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [ids[i] for i in np.argsort(-quality, kind="stable")[:6]]
    assert {r["lang"] for r in rows} == {"de"} and [r["rank"] for r in rows] == list(range(6))
    assert json.loads(capsys.readouterr().out)["n_pool"] == 55

    out = tmp_path / "das.jsonl"
    das = ["--method", "mdaq_das", "--seed", "3", "--params", '{"n_clusters": 4}']
    assert main([*base, *das, "--out", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    want = run_streamed("mdaq_das", {"n_clusters": 4}, feature_blocks(tmp_path / "feat"), 6, 3, lang="de")
    assert [r["id"] for r in rows] == want.ids and [r["part"] for r in rows] == [str(p) for p in want.parts]
    capsys.readouterr()

    no_lang = ["select", "--features", str(tmp_path / "feat"), "--budget", "6", "--method", "random"]
    assert main([*no_lang, "--out", str(tmp_path / "x.jsonl")]) == 1
    assert "--lang" in capsys.readouterr().err
    assert main([*base, "--method", "random", "--pooled", "--out", str(tmp_path / "x.jsonl")]) == 1
    assert "--pooled" in capsys.readouterr().err
    assert main([*base, "--method", "longest", "--out", str(tmp_path / "x.jsonl")]) == 1  # reads texts
    assert "longest" in capsys.readouterr().err
    assert main(["select", "--method", "random", "--budget", "2", "--out", str(tmp_path / "y.jsonl")]) == 1
    assert "--pool" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "y.jsonl").exists()
