"""``mdaq features``: QSM scores and diversity embeddings of a sharded pool as Parquet feature shards, in this process
or on Ray Data (a thin wrapper of :func:`mdaq.features.engine.compute_feature_shards`); and ``mdaq select`` over such
a folder, streamed without the pool's texts (:func:`mdaq.selectors.streamed.run_streamed`; ``docs/scale.md``)."""

from __future__ import annotations

import argparse
import json


def _features(args: argparse.Namespace) -> int:
    from mdaq.config import FeaturesConfig, RayConfig, load_params
    from mdaq.features.engine import FeatureSpec, compute_feature_shards

    params = load_params(args.params) if args.params else None
    feats = params.features if params else FeaturesConfig()
    ray = params.ray if params else RayConfig()

    def pick(value, default):  # a flag given on the command line wins over --params
        return default if value is None else value

    threads = pick(args.threads, ray.threads_per_worker if args.engine == "ray" else 0)
    spec = FeatureSpec(
        qsm_dir=str(args.qsm),
        encoder=str(args.encoder),
        embed_max_len=pick(args.embed_max_len, feats.embed_max_len),
        batch_size=pick(args.batch_size, feats.batch_size),
        precision=pick(args.precision, feats.precision),
        device=args.device,
        chunk_rows=args.chunk_rows,
        threads=threads,
    )
    manifest = compute_feature_shards(
        args.pool,
        args.out,
        spec,
        engine=args.engine,
        workers=pick(args.workers, ray.workers),
        ray_address=pick(args.ray_address, ray.address) or None,
        gpus_per_worker=pick(args.gpus_per_worker, ray.gpus_per_worker),
    )
    keys = ("n_rows", "n_shards", "dim", "n_computed", "n_kept", "seconds")
    print(json.dumps({"out": str(args.out), "engine": args.engine, **{k: manifest[k] for k in keys}}))
    return 0


def is_feature_folder(path: str | None) -> bool:
    """Whether ``mdaq select --features PATH`` names a feature-shard folder (written by ``mdaq features``) rather
    than the ``quality.npy`` / ``embeddings.npy`` folder of an in-memory pool."""
    from pathlib import Path

    from mdaq.shards.check import MANIFEST

    return bool(path) and (Path(path) / MANIFEST).is_file()


def select_streamed_cli(args: argparse.Namespace, params: dict) -> int:
    """``mdaq select --features FEATURE_DIR``: the method runs over the feature shards block by block and never reads
    a text (score- and cluster-based methods; the others refuse in one line). Writes selection JSONL rows
    ``{rank, index, id, lang, method[, part]}``, ``index`` being the row in the feature (= pool) order."""
    from mdaq.errors import DataError
    from mdaq.io import write_jsonl
    from mdaq.selectors.streamed import run_streamed
    from mdaq.shards.features import feature_blocks

    if args.pooled:
        raise DataError("--pooled", "not available on a feature folder: select each language's folder on its own")
    if not args.lang:
        raise DataError("--lang", "required with a feature folder (feature shards carry ids, not languages)")
    blocks = feature_blocks(args.features)
    run = run_streamed(args.method, params, blocks, args.budget, args.seed, lang=args.lang, source=args.features)
    rows = [
        {"rank": r, "index": int(i), "id": sid, "lang": args.lang, "method": args.method}
        for r, (i, sid) in enumerate(zip(run.indices, run.ids, strict=True))
    ]
    if run.parts is not None:
        rows = [{**row, "part": str(part)} for row, part in zip(rows, run.parts, strict=True)]
    write_jsonl(args.out, rows)
    summary = {"method": args.method, "features": str(args.features), "n_pool": run.n_pool, "n_selected": len(rows)}
    summary |= {"engine": run.engine, "n_clusters": run.n_clusters, "out": str(args.out)}
    print(json.dumps(summary))
    return 0


def add_features(sub: argparse._SubParsersAction) -> None:
    """Register ``mdaq features`` on the top-level subparsers."""
    fe = sub.add_parser(
        "features",
        help="QSM scores + embeddings of a sharded pool as Parquet feature shards, locally or on Ray (docs/scale.md)",
    )
    fe.add_argument("--pool", required=True, help="a folder of Parquet shards or a quoted glob ('pool/*.parquet')")
    fe.add_argument("--qsm", required=True, help="saved QSM folder")
    fe.add_argument("--encoder", required=True, help="diversity encoder folder (e.g. artifacts/base/me5-small)")
    fe.add_argument("--out", required=True, help="feature folder: one shard per pool shard; a rerun resumes it")
    fe.add_argument("--engine", choices=("local", "ray"), default="local")
    fe.add_argument("--workers", type=int, default=None, help="Ray actors (default: ray.workers of --params, or 2)")
    fe.add_argument("--threads", type=int, default=None, help="torch threads per process or actor (0: all cores)")
    fe.add_argument("--ray-address", default=None, help="join this Ray cluster ('auto', 'ray://<head>:10001')")
    fe.add_argument("--gpus-per-worker", type=float, default=None, help="GPUs per Ray actor (default 0)")
    fe.add_argument("--params", default=None, help="params.yaml: its features and ray sections give the defaults")
    fe.add_argument("--embed-max-len", type=int, default=None)
    fe.add_argument("--batch-size", type=int, default=None, help="rows per forward pass")
    fe.add_argument("--precision", default=None, help="of the embeddings: auto, fp32, bf16")
    fe.add_argument("--chunk-rows", type=int, default=4096, help="rows read, scored and written at once")
    fe.add_argument("--device", default="auto")
    fe.set_defaults(fn=_features)
