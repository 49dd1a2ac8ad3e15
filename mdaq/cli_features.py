"""Large-pool commands (``docs/scale.md``): ``mdaq features`` (QSM scores and diversity embeddings of a sharded pool as
Parquet feature shards, in this process or on Ray Data: :func:`mdaq.features.engine.compute_feature_shards`);
``mdaq select --features FEATURE_DIR`` (selection streamed over such a folder, without the pool's texts:
:func:`mdaq.selectors.streamed.run_streamed`); and ``mdaq select --pool SHARDS --engine local|ray``, both in one."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

ENGINES = ("local", "ray")  # mdaq.features.engine.ENGINES, spelled here so that `--help` imports no engine


def run_features(args: argparse.Namespace, out: str | Path, engine: str, params: Any = None) -> dict[str, Any]:
    """Compute (or resume) the feature shards of ``args.pool`` into ``out`` with the options of
    :func:`add_feature_options`, ``args.qsm``, ``args.encoder`` and ``args.device``; a flag given on the command line
    wins over ``params`` (a loaded ``params.yaml``: its ``features`` and ``ray`` sections), which wins over the
    defaults of :class:`~mdaq.config.FeaturesConfig` and :class:`~mdaq.config.RayConfig`. Returns the manifest of
    :func:`~mdaq.features.engine.compute_feature_shards`."""
    from mdaq.config import FeaturesConfig, RayConfig
    from mdaq.features.engine import FeatureSpec, compute_feature_shards

    feats = params.features if params else FeaturesConfig()
    ray = params.ray if params else RayConfig()

    def pick(value, default):
        return default if value is None else value

    spec = FeatureSpec(
        qsm_dir=str(args.qsm),
        encoder=str(args.encoder),
        embed_max_len=pick(args.embed_max_len, feats.embed_max_len),
        batch_size=pick(args.batch_size, feats.batch_size),
        precision=pick(args.precision, feats.precision),
        device=args.device,
        chunk_rows=pick(args.chunk_rows, FeatureSpec.chunk_rows),
        threads=pick(args.threads, ray.threads_per_worker if engine == "ray" else 0),
    )
    return compute_feature_shards(
        args.pool,
        out,
        spec,
        engine=engine,
        workers=pick(args.workers, ray.workers),
        ray_address=pick(args.ray_address, ray.address) or None,
        gpus_per_worker=pick(args.gpus_per_worker, ray.gpus_per_worker),
    )


FEATURE_KEYS = ("n_rows", "n_shards", "dim", "n_computed", "n_kept", "seconds")


def _features(args: argparse.Namespace) -> int:
    from mdaq.config import load_params

    manifest = run_features(args, args.out, args.engine, load_params(args.params) if args.params else None)
    print(json.dumps({"out": str(args.out), "engine": args.engine, **{k: manifest[k] for k in FEATURE_KEYS}}))
    return 0


def is_feature_folder(path: str | None) -> bool:
    """Whether ``mdaq select --features PATH`` names a feature-shard folder (written by ``mdaq features``) rather
    than the ``quality.npy`` / ``embeddings.npy`` folder of an in-memory pool."""
    from mdaq.shards.check import MANIFEST

    return bool(path) and (Path(path) / MANIFEST).is_file()


FEATURE_OPTIONS = (  # the options of add_feature_options, as argparse names them
    "workers",
    "threads",
    "ray_address",
    "gpus_per_worker",
    "embed_max_len",
    "batch_size",
    "precision",
    "chunk_rows",
)


def uses_engine(args: argparse.Namespace) -> bool:
    """Whether ``mdaq select`` computes the feature shards itself (``--engine`` or ``--features-out`` given).

    Raises
    ------
    DataError
        For an option of the feature computation (``--workers``, ``--ray-address``, ...) given without them: the
        selection would otherwise run in memory, ignoring it.
    """
    from mdaq.errors import DataError

    if args.engine or args.features_out:
        return True
    for name in FEATURE_OPTIONS:
        if getattr(args, name) is not None:
            raise DataError(f"--{name.replace('_', '-')}", "only with --engine (the features of a sharded pool)")
    return False


def streamed_selection(args: argparse.Namespace, params: dict, features: str | Path, lang: str) -> dict[str, Any]:
    """Run ``args.method`` streamed over the feature folder ``features`` and write its selection JSONL rows
    ``{rank, index, id, lang, method[, part]}`` to ``args.out`` (``index``: the row in feature = pool order), and,
    with ``args.write_records``, the selected records (:func:`mdaq.shards.subset.read_records`, one pass over
    ``args.pool``). Returns the summary line's fields."""
    from mdaq.io import write_jsonl
    from mdaq.selectors.streamed import run_streamed
    from mdaq.shards.features import feature_blocks

    start = time.perf_counter()
    blocks = feature_blocks(features)
    run = run_streamed(args.method, params, blocks, args.budget, args.seed, lang=lang, source=features)
    rows = [
        {"rank": r, "index": int(i), "id": sid, "lang": lang, "method": args.method}
        for r, (i, sid) in enumerate(zip(run.indices, run.ids, strict=True))
    ]
    if run.parts is not None:
        rows = [{**row, "part": str(part)} for row, part in zip(rows, run.parts, strict=True)]
    write_jsonl(args.out, rows)
    summary = {"method": args.method, "features": str(features), "n_pool": run.n_pool, "n_selected": len(rows)}
    summary |= {"engine": run.engine, "n_clusters": run.n_clusters, "select_seconds": _since(start)}
    if args.write_records:
        from mdaq.shards.subset import read_records

        start = time.perf_counter()
        write_jsonl(args.write_records, read_records(args.pool, run.ids, lang=lang))
        summary |= {"records": str(args.write_records), "records_seconds": _since(start)}
    return summary | {"out": str(args.out)}


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def select_streamed_cli(args: argparse.Namespace, params: dict) -> int:
    """``mdaq select --features FEATURE_DIR``: the method runs over the feature shards block by block and never reads
    a text (score- and cluster-based methods; the others refuse in one line); ``--write-records`` also needs
    ``--pool``, the sharded pool the features were computed from."""
    from mdaq.errors import DataError
    from mdaq.shards import is_shard_source

    if args.pooled:
        raise DataError("--pooled", "not available on a feature folder: select each language's folder on its own")
    if not args.lang:
        raise DataError("--lang", "required with a feature folder (feature shards carry ids, not languages)")
    if args.write_records and not (args.pool and is_shard_source(args.pool)):
        raise DataError("--write-records", "needs --pool naming the sharded pool the feature folder was computed from")
    print(json.dumps(streamed_selection(args, params, args.features, args.lang)))
    return 0


def _pool_lang(pool: str, lang: str | None) -> tuple[str, int]:
    """The one language of a sharded pool (``lang`` checked against the pool's ``lang`` column, or read from it) and
    the pool's number of rows."""
    from mdaq.errors import DataError
    from mdaq.shards.subset import count_langs

    counts = count_langs(pool)
    if not counts:
        raise DataError(pool, "no samples: the pool is empty")
    held = ", ".join(f"{k} ({n:,} rows)" for k, n in counts.items())
    if len(counts) == 1 and lang in (None, *counts):
        return next(iter(counts)), sum(counts.values())
    why = "select from one language's pool (feature shards carry ids, not languages)"
    if lang is None:
        raise DataError(pool, f"holds several languages, {held}: {why}", field="lang")
    raise DataError("--lang", f"{lang}, but the pool holds {held}: {why}")


def select_with_engine(args: argparse.Namespace, params: dict) -> int:
    """``mdaq select --pool SHARDS --engine local|ray``: compute (or resume) the pool's feature shards in
    ``--features-out`` (default ``<out>.features``), then select from them as ``--features FEATURE_DIR`` does
    (:func:`streamed_selection`). Everything that would be refused is refused before a feature is computed."""
    from mdaq.errors import DataError
    from mdaq.io import check_distinct
    from mdaq.selectors.streamed import check_streamable
    from mdaq.shards import is_shard_source

    unused = {"--features": args.features, "--pooled": args.pooled, "--ifd": args.ifd, "--ifd-model": args.ifd_model}
    for flag, given in unused.items():
        if given:
            raise DataError(flag, "not with --engine, which computes the features of one language's sharded pool")
    for flag, given in (("--pool", args.pool), ("--qsm", args.qsm), ("--encoder", args.encoder)):
        if not given:
            raise DataError(flag, "required with --engine (the sharded pool, and the models its features come from)")
    if not is_shard_source(args.pool):
        raise DataError(args.pool, "--engine needs a sharded pool, a folder or glob of Parquet shards (data shard)")
    out = Path(args.features_out or f"{args.out}.features")
    check_distinct(args.out, {"--features-out": out})
    if args.write_records:
        check_distinct(args.write_records, {"--pool": args.pool, "--out": args.out, "--features-out": out})
    lang, n_rows = _pool_lang(args.pool, args.lang)
    check_streamable(args.method, params, n_rows, args.seed)
    engine = args.engine or "local"
    manifest = run_features(args, out, engine)
    selected = streamed_selection(args, params, out, lang)
    summary = {"method": args.method, "pool": str(args.pool), "lang": lang, "engine": engine, "features": str(out)}
    summary |= {k: manifest[k] for k in ("n_shards", "n_computed", "n_kept")}
    summary |= {"features_seconds": manifest["seconds"], "kmeans_engine": selected["engine"]}
    print(json.dumps(summary | {k: v for k, v in selected.items() if k not in summary and k != "engine"}))
    return 0


def add_feature_options(parser: argparse.ArgumentParser) -> None:
    """The options of a feature computation that ``mdaq features`` and ``mdaq select --engine`` share."""
    parser.add_argument("--workers", type=int, default=None, help="Ray actors (default 2, or ray.workers)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process or actor (0: all cores)")
    parser.add_argument("--ray-address", default=None, help="join this Ray cluster ('auto', 'ray://<head>:10001')")
    parser.add_argument("--gpus-per-worker", type=float, default=None, help="GPUs per Ray actor (default 0)")
    parser.add_argument("--embed-max-len", type=int, default=None, help="embedding token limit (default 256)")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per forward pass (default 32)")
    parser.add_argument("--precision", default=None, help="of the embeddings: auto (default), fp32, bf16")
    parser.add_argument("--chunk-rows", type=int, default=None, help="rows read, scored and written at once (4096)")


def add_select_engine(se: argparse.ArgumentParser) -> None:
    """Add ``mdaq select``'s one-command options for a sharded pool (``--engine`` and what goes with it)."""
    se.add_argument(
        "--engine",
        choices=ENGINES,
        default=None,
        help="compute the feature shards of a sharded --pool (of one language) here (local) or on Ray Data, then "
        "select streamed over them; needs --qsm and --encoder (docs/scale.md)",
    )
    se.add_argument(
        "--features-out",
        default=None,
        help="with --engine: the feature-shard folder, resumed by a rerun (default: <out>.features)",
    )
    se.add_argument(
        "--write-records",
        default=None,
        metavar="FILE",
        help="streamed selection from a sharded --pool: also write the selected records (instruction, input, "
        "output, lang, id) as JSONL, in rank order",
    )
    add_feature_options(se)


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
    fe.add_argument("--engine", choices=ENGINES, default="local")
    fe.add_argument("--params", default=None, help="params.yaml: its features and ray sections give the defaults")
    fe.add_argument("--device", default="auto")
    add_feature_options(fe)
    fe.set_defaults(fn=_features)
