"""``mdaq features``: QSM scores and diversity embeddings of a sharded pool as Parquet feature shards, in this process
or on Ray Data (a thin wrapper of :func:`mdaq.features.engine.compute_feature_shards`; ``docs/scale.md``)."""

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
