"""QSM scores and diversity embeddings, and optionally IFD, of a sharded pool, one Parquet feature shard per pool
shard, resumable per shard: in this process (``engine="local"``) or on Ray Data actors (``engine="ray"``,
:mod:`mdaq.features.ray_engine`).

Both engines run the same :class:`ShardFeaturizer` on each pool shard, so they give the same features; they differ only
in where it runs. The unit of work, of resumption and of output is a pool shard (``docs/scale.md`` says why).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.errors import DataError
from mdaq.features.spec import EMBED_PREFIX, FeatureSpec, ShardTask, fingerprint
from mdaq.io import check_distinct, read_json
from mdaq.shards.check import MANIFEST, file_sha256
from mdaq.shards.feature_write import (
    finish_feature_folder,
    read_footer,
    shard_is_done,
    start_feature_folder,
    write_feature_shard,
)
from mdaq.shards.features import FeatureBlock

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


class ShardFeaturizer:
    """Loads the models once (per process or per Ray actor) and featurizes whole pool shards.

    Parameters
    ----------
    spec : FeatureSpec
        Models and settings.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        import torch

        from mdaq.models.lm import resolve_device

        self.spec = spec
        self.device = resolve_device(spec.device)
        self.provenance: dict[str, Any] = {"device": str(self.device)}
        self.qsm = self.embedder = self.dim = self.ifd = None
        if spec.has_scores:
            self._load_scorers()
        if spec.ifd_model is not None:
            from mdaq.features.ifd import IFDScorer

            self.ifd = IFDScorer(spec.ifd_model, replace(spec.ifd_config(), device=self.device))
            self.provenance["ifd_precision"] = self.ifd.cfg.precision
        if spec.threads > 0:  # after configure_torch, which sets its own thread plan
            torch.set_num_threads(spec.threads)
        self.provenance["torch_threads"] = torch.get_num_threads()

    def _load_scorers(self) -> None:
        from transformers import AutoConfig

        from mdaq.features.embed import SentenceEmbedder
        from mdaq.hardware import configure_torch
        from mdaq.quality.model import QualityModel

        spec = self.spec
        hardware = configure_torch(spec.precision, self.device, stage="features")
        self.qsm = QualityModel.load(spec.qsm_dir, device=self.device)
        self.embedder = SentenceEmbedder(
            spec.encoder,
            prefix=EMBED_PREFIX,
            max_len=spec.embed_max_len,
            batch_size=spec.batch_size,
            device=self.device,
            precision=hardware["precision"],
        )
        self.dim = int(AutoConfig.from_pretrained(spec.encoder).hidden_size)
        self.provenance |= {"precision": hardware["precision"], "qsm_precision": self.qsm.precision_}

    def blocks(self, shard: str | Path) -> Iterator[FeatureBlock]:
        """The features of one pool shard, ``spec.chunk_rows`` rows at a time, in its order (rows checked as
        :func:`mdaq.shards.iter_pool_batches` checks them)."""
        from mdaq.features.embed import sample_text
        from mdaq.quality.model import anchor_text
        from mdaq.shards import iter_pool_batches
        from mdaq.types import Sample

        names = ("id", "lang", "instruction", "input", "output")
        for batch in iter_pool_batches(shard, self.spec.chunk_rows):
            cols = {name: batch.column(name).to_pylist() for name in names}
            rows = list(zip(cols["instruction"], cols["input"], cols["output"], strict=True))
            features: dict[str, np.ndarray] = {}
            if self.qsm is not None:
                anchors = [anchor_text(i, x) for i, x, _ in rows]
                features["quality"] = self.qsm.score(anchors, cols["output"], batch_size=self.spec.batch_size)
                features["embeddings"] = self.embedder.encode([sample_text(i, x, o) for i, x, o in rows])
            if self.ifd is not None:
                features |= self.ifd.score([Sample(*row) for row in zip(*(cols[n] for n in names), strict=True)])
            features = {k: np.asarray(v).astype(np.float32, copy=False) for k, v in features.items()}
            yield FeatureBlock(np.asarray(cols["id"], dtype=object), **features)

    def featurize(self, task: ShardTask) -> dict[str, Any]:
        """Write ``task``'s feature shard atomically; return its manifest entry plus this worker's provenance."""
        start = time.perf_counter()
        name = Path(task.path).name
        out = Path(task.out) / name
        if shard_is_done(out, fingerprint=task.fingerprint, pool_sha256=task.pool_sha256, n_rows=task.n_rows):
            # a retried task whose shard was written: Ray reruns the task a killed actor held, even one that wrote
            # its shard just before the kill
            return kept_entry(out, task.n_rows)
        footer = {
            "fingerprint": task.fingerprint,
            "pool_shard": name,
            "pool_sha256": task.pool_sha256,
            "dim": self.dim,
            **self.provenance,
        }
        blocks = self.blocks(task.path) if task.n_rows else iter(())
        ifd = self.ifd is not None
        entry = write_feature_shard(out, blocks, dim=self.dim, footer=footer, n_rows=task.n_rows, ifd=ifd)
        log.info("features: %s, %d rows in %.1f s", name, task.n_rows, time.perf_counter() - start)
        return {**entry, "pool_sha256": task.pool_sha256, **{k: v for k, v in footer.items() if k != "pool_shard"}}


def kept_entry(path: Path, n_rows: int) -> dict[str, Any]:
    """The manifest entry of a finished feature shard that is kept, not computed again (its footer's provenance)."""
    footer = read_footer(path)
    return {
        "name": path.name,
        "n_rows": n_rows,
        "sha256": file_sha256(path),
        **{k: v for k, v in footer.items() if k not in ("pool_shard", "n_rows")},
    }


def _pool_shas(pool: str | Path, shards: list[Any]) -> list[str]:
    """Each pool shard's sha256: from the pool's manifest when it has one (``mdaq data validate`` checks those), else
    hashed here."""
    folder = Path(pool)
    if folder.is_dir() and (folder / MANIFEST).is_file():
        listed = {e["name"]: e.get("sha256") for e in read_json(folder / MANIFEST)["shards"]}
        return [listed.get(s.path.name) or file_sha256(s.path) for s in shards]
    return [file_sha256(s.path) for s in shards]


def plan_shards(
    pool: str | Path, out: str | Path, fp: str
) -> tuple[list[ShardTask], dict[str, dict[str, Any]], list[str]]:
    """Split a pool's shards into those to compute and the finished ones a resumed run keeps.

    Returns
    -------
    tasks : list of ShardTask
        In pool order.
    done : dict
        Pool shard name -> manifest entry (with provenance) of each feature shard kept.
    names : list of str
        Every pool shard's name, in pool order.
    """
    from mdaq.shards import list_shards

    shards = list_shards(pool)
    names = [s.path.name for s in shards]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(pool, f"two pool shards share the name {repeated[0]!r}; feature shards are named after them")
    tasks, done = [], {}
    for shard, sha in zip(shards, _pool_shas(pool, shards), strict=True):
        target = Path(out) / shard.path.name
        if shard_is_done(target, fingerprint=fp, pool_sha256=sha, n_rows=shard.n_rows):
            done[target.name] = kept_entry(target, shard.n_rows)
        else:
            tasks.append(ShardTask(str(shard.path), shard.n_rows, sha, str(out), fp))
    return tasks, done, names


def _run_local(tasks: list[ShardTask], spec: FeatureSpec) -> Iterator[dict[str, Any]]:
    """Featurize ``tasks`` here; a shard with a bad row is reported (the first in pool order) once the others are
    done, as the Ray engine does, so that a rerun after the fix computes only the bad shards."""
    if not tasks:
        return
    featurizer = ShardFeaturizer(spec)
    first_error = None
    for task in tasks:
        try:
            yield featurizer.featurize(task)
        except DataError as e:
            first_error = first_error or e
    if first_error is not None:
        raise first_error


PROVENANCE_KEYS = ("device", "precision", "qsm_precision", "ifd_precision", "torch_threads")


def _check_models(spec: FeatureSpec) -> None:
    """Refuse missing model folders here, before any worker starts (a worker's failure would say it less clearly)."""
    from mdaq.errors import MissingAssetError
    from mdaq.quality.model import CONFIG_FILE

    if spec.has_scores and not (Path(spec.qsm_dir) / CONFIG_FILE).is_file():
        raise MissingAssetError(
            f"{spec.qsm_dir} is not a saved QSM (no {CONFIG_FILE}); train one with `dvc repro qsm`"
        )
    if spec.has_scores and not (Path(spec.encoder) / "config.json").is_file():
        raise MissingAssetError(f"encoder folder {spec.encoder} not found (no config.json)")
    if spec.ifd_model is not None:
        lm = Path(spec.ifd_model)
        if not (lm / "config.json").is_file():
            raise MissingAssetError(f"causal LM folder {lm} (--ifd-model) not found (no config.json)")
        if not any(lm.glob("*.safetensors")):
            raise MissingAssetError(f"causal LM folder {lm} (--ifd-model) holds no *.safetensors weights")


def compute_feature_shards(
    pool: str | Path,
    out: str | Path,
    spec: FeatureSpec,
    *,
    engine: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    gpus_per_worker: float = 0.0,
) -> dict[str, Any]:
    """Compute (or finish computing) the feature shards of a sharded pool.

    Parameters
    ----------
    pool : str or Path
        A shard folder or glob (:func:`mdaq.shards.list_shards`).
    out : str or Path
        The feature folder: created, or resumed when it holds an interrupted run of the same fingerprint; finished
        shards whose pool shard is unchanged (same sha256) are kept, the others computed.
    spec : FeatureSpec
        Models and settings.
    engine : {"local", "ray"}
        In this process, or on a Ray Data actor pool (:func:`mdaq.features.ray_engine.run_on_ray`).
    workers : int
        Ray actors (each loads the models once); ignored by ``local``.
    ray_address : str, optional
        Join this Ray cluster (``ray://host:10001`` or ``auto``); None starts Ray inside this process.
    gpus_per_worker : float
        GPUs reserved per actor (0 on a CPU machine).

    Returns
    -------
    dict
        The manifest (:func:`mdaq.shards.feature_write.finish_feature_folder`) plus ``n_computed``, ``n_kept`` and
        ``seconds``.

    Raises
    ------
    DataError
        For a bad pool row (naming the shard, row and field), an ``out`` that is the pool or not a feature folder, or
        features of another fingerprint in ``out``.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    start = time.perf_counter()
    pool_dir = Path(pool) if Path(pool).is_dir() else Path(str(pool)).parent
    check_distinct(out, {"--pool": pool_dir})
    _check_models(spec)
    fp = fingerprint(spec)
    start_feature_folder(out, fingerprint=fp, pool=str(pool), record={"engine": engine})
    tasks, entries, names = plan_shards(pool, out, fp)
    log.info("features: %d shards to compute, %d kept from an earlier run", len(tasks), len(entries))
    if engine == "local":
        results = _run_local(tasks, spec)
    else:
        from mdaq.features.ray_engine import run_on_ray

        results = run_on_ray(tasks, spec, workers=workers, address=ray_address, gpus_per_worker=gpus_per_worker)
    for entry in results:
        entries[entry["name"]] = entry
    ordered = [entries[name] for name in names]
    dims = {e["dim"] for e in ordered}
    if len(dims) != 1:
        raise DataError(out, f"feature shards of different embedding sizes {sorted(map(str, dims))}")
    provenance = sorted({json.dumps({k: e.get(k) for k in PROVENANCE_KEYS}, sort_keys=True) for e in ordered})
    record = {
        "spec": asdict(spec),
        "embedder": f"mean-pool:{Path(spec.encoder).name}" if spec.has_scores else None,
        "engine": engine,
        "workers": workers if engine == "ray" else 1,
        "workers_provenance": [json.loads(p) for p in provenance],
    }
    keep = ("name", "n_rows", "sha256", "pool_sha256")
    manifest = finish_feature_folder(
        out,
        [{k: e[k] for k in keep} for e in ordered],
        fingerprint=fp,
        pool=str(pool),
        dim=dims.pop(),
        record=record,
        ifd=spec.ifd_model is not None,
    )
    return {
        **manifest,
        "n_computed": len(tasks),
        "n_kept": len(ordered) - len(tasks),
        "seconds": round(time.perf_counter() - start, 3),
    }
