"""The Ray Data engine of `mdaq features` on a local 2-CPU Ray cluster started once for the module: same features as
the in-process engine (QSM features and IFD), a worker's bad-row error unwrapped, a failed run resumed shard by
shard; and `mdaq select --engine ray`, features and selection in one command, selecting what the two commands and the
local engine select."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mdaq.cli import main
from mdaq.errors import DataError
from mdaq.features.engine import FeatureSpec, compute_feature_shards
from mdaq.io import read_jsonl
from mdaq.shards.features import iter_feature_shards, read_feature_manifest
from tests.feature_pool import read_all, save_tiny_qsm, write_pool

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 CPUs for the whole module (starting one costs seconds); stopped at the end."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tiny_encoder, tmp_path_factory):
    root = tmp_path_factory.mktemp("rayfeat")
    qsm = save_tiny_qsm(tiny_encoder, root / "qsm")
    pool = write_pool(root / "pool", 60, 12)
    spec = FeatureSpec(str(qsm), str(qsm), embed_max_len=32, batch_size=8, precision="fp32", chunk_rows=8, threads=1)
    compute_feature_shards(pool, root / "local", spec)
    return root, pool, spec


def test_ray_engine_gives_the_in_process_features(ray_cluster, setup, tmp_path):
    root, pool, spec = setup
    manifest = compute_feature_shards(pool, tmp_path / "ray", spec, engine="ray", workers=2)
    assert (manifest["n_rows"], manifest["n_shards"], manifest["n_computed"]) == (60, 5, 5)
    assert manifest["record"]["engine"] == "ray" and manifest["record"]["workers"] == 2
    assert {p["torch_threads"] for p in manifest["record"]["workers_provenance"]} == {1}
    local = read_feature_manifest(root / "local")
    assert [e["name"] for e in manifest["shards"]] == [e["name"] for e in local["shards"]]
    assert manifest["fingerprint"] == local["fingerprint"]
    ids, quality, emb = read_all(tmp_path / "ray")
    ids0, quality0, emb0 = read_all(root / "local")
    assert np.array_equal(ids, ids0)
    np.testing.assert_allclose(quality, quality0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(emb, emb0, rtol=1e-6, atol=1e-6)


def test_ray_worker_error_is_clear_and_the_run_resumes(ray_cluster, setup, tmp_path):
    root, pool, spec = setup
    bad_pool = tmp_path / "pool"
    bad_pool.mkdir()
    for p in pool.iterdir():
        (bad_pool / p.name).write_bytes(p.read_bytes())
    last = bad_pool / "part-00004.parquet"
    table = pq.read_table(last)
    outputs = table.column("output").to_pylist()
    outputs[5] = "edited after the id was computed"
    pq.write_table(table.set_column(table.schema.get_field_index("output"), "output", pa.array(outputs)), last)
    with pytest.raises(DataError, match=r"part-00004.parquet, record row 5, field 'id': .* is not the content hash"):
        compute_feature_shards(bad_pool, tmp_path / "feat", spec, engine="ray", workers=2)
    with pytest.raises(DataError, match="incomplete"):
        read_feature_manifest(tmp_path / "feat")
    done = sorted(p.name for p in (tmp_path / "feat").glob("part-*.parquet"))
    assert done == [f"part-0000{k}.parquet" for k in range(4)]  # every good shard finished before the error
    last.write_bytes((pool / "part-00004.parquet").read_bytes())  # the pool repaired: the run resumes
    manifest = compute_feature_shards(bad_pool, tmp_path / "feat", spec, engine="ray", workers=2)
    assert (manifest["n_kept"], manifest["n_computed"]) == (4, 1)
    ids, quality, emb = read_all(tmp_path / "feat")
    ids0, quality0, emb0 = read_all(root / "local")
    assert np.array_equal(ids, ids0)
    np.testing.assert_allclose(quality, quality0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(emb, emb0, rtol=1e-6, atol=1e-6)
    assert Path(manifest["pool"]) == bad_pool


def test_select_engine_ray_selects_as_the_two_commands_and_the_local_engine(ray_cluster, setup, tmp_path, capsys):
    root = setup[0]
    pool = write_pool(tmp_path / "pool", 36, 6, langs=("de",))
    models = ["--qsm", str(root / "qsm"), "--encoder", str(root / "qsm"), "--embed-max-len", "32", "--precision"]
    models += ["fp32", "--batch-size", "8", "--chunk-rows", "8", "--threads", "1"]
    das = ["--method", "mdaq_das", "--budget", "8", "--seed", "3", "--params", '{"n_clusters": 3}']
    one = ["select", "--pool", str(pool / "*.parquet"), *models, *das]  # no --lang: read from the pool
    assert main([*one, "--engine", "ray", "--workers", "2", "--out", str(tmp_path / "ray.jsonl")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["engine"], summary["lang"], summary["n_computed"], summary["n_selected"]) == ("ray", "de", 6, 8)
    assert summary["features"] == str(tmp_path / "ray.jsonl.features") and summary["features_seconds"] > 0
    assert read_feature_manifest(tmp_path / "ray.jsonl.features")["record"]["engine"] == "ray"
    assert main(["features", "--pool", str(pool), *models, "--out", str(tmp_path / "feat")]) == 0
    two = ["select", "--features", str(tmp_path / "feat"), "--lang", "de", *das]
    assert main([*two, "--out", str(tmp_path / "two.jsonl")]) == 0
    assert main([*one, "--engine", "local", "--out", str(tmp_path / "local.jsonl")]) == 0
    rows = read_jsonl(tmp_path / "ray.jsonl")
    assert len(rows) == 8 and {r["part"] for r in rows} <= {"quality", "diversity", "fill"}
    assert rows == read_jsonl(tmp_path / "two.jsonl") == read_jsonl(tmp_path / "local.jsonl")


def test_ray_engine_gives_the_in_process_ifd(ray_cluster, tiny_lm, tmp_path):
    """IFD on 2 actors (each loads the causal LM once) equals IFD in this process: same ids, order and values."""
    pool = write_pool(tmp_path / "pool", 16, 4, langs=("de",))
    spec = FeatureSpec(ifd_model=str(tiny_lm), ifd_max_seq_len=48, ifd_batch_size=4, ifd_precision="fp32", threads=1)
    local = compute_feature_shards(pool, tmp_path / "local", spec)
    manifest = compute_feature_shards(pool, tmp_path / "ray", spec, engine="ray", workers=2)
    assert (manifest["n_computed"], manifest["record"]["workers"], manifest["dim"]) == (4, 2, None)
    assert manifest["fingerprint"] == local["fingerprint"] and manifest["columns"] == local["columns"]
    got, want = (list(iter_feature_shards(tmp_path / name)) for name in ("ray", "local"))
    assert np.array_equal(np.concatenate([b.ids for b in got]), np.concatenate([b.ids for b in want]))
    for name in ("ifd", "loss_conditional", "loss_unconditional"):
        a, b = (np.concatenate([getattr(x, name) for x in blocks]) for blocks in (got, want))
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_a_killed_actor_loses_no_finished_shard(ray_cluster, setup, tmp_path):
    """SIGKILL a Ray actor as soon as the first feature shard is written. Ray Data restarts the actor and retries its
    shard, or the run fails and a rerun computes what is missing: either way the folder ends complete with the
    in-process features, and no shard finished before the kill is written again."""
    import signal
    import threading
    import time

    import psutil

    root, _, spec = setup
    pool = write_pool(tmp_path / "pool", 240, 30)  # 8 shards: work left for the other actor after the first
    compute_feature_shards(pool, tmp_path / "local", spec)
    out, seen, killed = tmp_path / "ray", {}, []

    def kill_an_actor() -> None:
        deadline = time.monotonic() + 300
        while not killed and time.monotonic() < deadline:
            done = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
            actors = [p for p in psutil.process_iter(["cmdline"]) if "MapWorker" in " ".join(p.info["cmdline"] or [])]
            if done and actors:
                seen.update(done)
                actors[0].send_signal(signal.SIGKILL)
                killed.append(actors[0].pid)
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_an_actor, daemon=True)
    watcher.start()
    try:
        manifest = compute_feature_shards(pool, out, spec, engine="ray", workers=2)
    except Exception:  # Ray gave up on the killed actor: the finished shards stay, and a rerun resumes from them
        manifest = compute_feature_shards(pool, out, spec, engine="ray", workers=2)
        assert manifest["n_kept"] >= len(seen)
    watcher.join(timeout=1)
    assert killed, "no actor was running once the first shard was written"
    assert manifest["n_shards"] == 8 and read_feature_manifest(out)["n_rows"] == 240
    assert {name: (out / name).stat().st_mtime_ns for name in seen} == seen  # finished before the kill: kept
    ids, quality, emb = read_all(out)
    ids0, quality0, emb0 = read_all(tmp_path / "local")
    assert np.array_equal(ids, ids0)
    np.testing.assert_allclose(quality, quality0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(emb, emb0, rtol=1e-6, atol=1e-6)
