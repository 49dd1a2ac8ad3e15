"""``mdaq select``: one method over a pool in memory (features read from ``.npy`` folders or computed with
``--qsm`` / ``--encoder`` / ``--ifd-model``); streamed over a feature-shard folder (``--features FEATURE_DIR``,
:func:`mdaq.selectors.streamed.run_streamed`, texts never read); or, for a sharded pool, its feature shards computed
in this process or on Ray Data and then selected from, streamed (``--engine local|ray``; ``docs/scale.md``)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from mdaq.cli_features import (
    ENGINES,
    add_feature_options,
    add_ifd_options,
    check_ifd_options,
    check_model_options,
    run_features,
)
from mdaq.errors import DataError

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


def _read_pool(args: argparse.Namespace) -> list:
    """Samples of ``--pool``: mdaq JSONL rows (with ``id``), or any format :func:`mdaq.data.loaders.load_any` reads
    (a shard folder or glob among them)."""
    from mdaq.data.loaders import load_any
    from mdaq.io import iter_jsonl, read_samples
    from mdaq.shards import is_shard_source

    path = Path(args.pool)
    if not path.exists() and not is_shard_source(args.pool):
        raise FileNotFoundError(f"{path}: no such pool file")
    if path.suffix == ".jsonl" and args.format == "auto":
        first = next(iter(iter_jsonl(path)), {})
        if "id" in first and "lang" in first:
            return read_samples(path)
    samples = load_any(path, args.lang, fmt=args.format)
    if not samples:
        raise DataError(path, "no samples: the pool is empty")
    return samples


def _pool_features(args: argparse.Namespace, samples: list, needs: frozenset) -> dict:
    """Features for ``needs``: read from --features/--ifd folders or computed with --qsm/--encoder/--ifd-model."""
    import numpy as np

    from mdaq.io import read_finite_npy

    out: dict = {}
    if args.features:
        for name in ("quality", "embeddings"):
            f = Path(args.features) / f"{name}.npy"
            if f.is_file():
                out[name] = read_finite_npy(f, name)  # a NaN score or embedding: refused, naming file and row
                if len(out[name]) != len(samples):
                    raise DataError(f, f"{len(out[name])} rows for the {len(samples)} samples of --pool", field=name)
    if args.ifd:
        out["ifd"] = np.load(Path(args.ifd) / "ifd.npy", allow_pickle=False)
    if "quality" in needs and "quality" not in out and args.qsm:
        from mdaq.quality.model import QualityModel

        out["quality"] = QualityModel.load(args.qsm, device=args.device).score_samples(samples)
    if "embeddings" in needs and "embeddings" not in out and args.encoder:
        from mdaq.features.embed import SentenceEmbedder, sample_text

        emb = SentenceEmbedder(args.encoder, device=args.device)
        out["embeddings"] = emb.encode([sample_text(s.instruction, s.input, s.output) for s in samples])
    if "ifd" in needs and "ifd" not in out and args.ifd_model:
        from mdaq.cli_features import ifd_config
        from mdaq.features.ifd import compute_ifd

        out["ifd"] = compute_ifd(args.ifd_model, samples, ifd_config(args))["ifd"]
    return out


def select_command(args: argparse.Namespace) -> int:
    """``mdaq select``: in memory, streamed over a feature folder, or with ``--engine`` (module docstring)."""
    from mdaq.io import check_distinct, write_jsonl
    from mdaq.selectors import SELECTORS
    from mdaq.selectors.runner import select_samples

    requires = SELECTORS.get(args.method).requires
    check_distinct(args.out, {"--pool": args.pool, "--features": args.features})
    if args.seed < 0:
        raise DataError("--seed", f"{args.seed} is negative (numpy seeds are >= 0)")
    if args.budget < 1:
        raise DataError("--budget", f"{args.budget} is not a positive number of samples")
    try:
        params = json.loads(args.params) if args.params else {}
    except json.JSONDecodeError as e:
        raise DataError("--params", f"not valid JSON: {e}") from None
    if uses_engine(args):  # a large pool in one command: its feature shards computed, then selected from, streamed
        return select_with_engine(args, params)
    if is_feature_folder(args.features):  # a large pool: streamed over its feature shards, texts never read
        return select_streamed_cli(args, params)
    if args.write_records:
        raise DataError("--write-records", "only with a streamed selection (--engine, or --features FEATURE_DIR)")
    if not args.pool:
        raise DataError("--pool", "required (or --features naming a feature-shard folder written by `mdaq features`)")
    check_ifd_options(args)
    samples = _read_pool(args)
    rows = select_samples(
        samples,
        args.method,
        args.budget,
        params=params,
        seed=args.seed,
        features=_pool_features(args, samples, requires),
        pooled=args.pooled,
        quota=args.quota,
        temperature=args.temperature,
        params_source="--params",
    )
    write_jsonl(args.out, rows)
    by_lang: dict = {}
    for r in rows:
        by_lang[r["lang"]] = by_lang.get(r["lang"], 0) + 1
    summary = {"method": args.method, "pool": str(args.pool), "n_pool": len(samples), "n_selected": len(rows)}
    print(json.dumps(summary | {"by_lang": by_lang, "out": str(args.out)}))
    return 0


def is_feature_folder(path: str | None) -> bool:
    """Whether ``mdaq select --features PATH`` names a feature-shard folder (written by ``mdaq features``) rather
    than the ``quality.npy`` / ``embeddings.npy`` folder of an in-memory pool."""
    from mdaq.shards.check import MANIFEST

    return bool(path) and (Path(path) / MANIFEST).is_file()


def uses_engine(args: argparse.Namespace) -> bool:
    """Whether ``mdaq select`` computes the feature shards itself (``--engine`` or ``--features-out`` given).

    Raises
    ------
    DataError
        For an option of the feature computation (``--workers``, ``--ray-address``, ...) given without them: the
        selection would otherwise run in memory, ignoring it.
    """
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
    from mdaq.shards.features import feature_blocks, folder_features, read_feature_manifest

    start = time.perf_counter()
    blocks = feature_blocks(features)
    held = folder_features(read_feature_manifest(features))
    run = run_streamed(args.method, params, blocks, args.budget, args.seed, lang=lang, source=features, features=held)
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
    a text (score- and cluster-based methods, and ``ifd`` on a folder with IFD; the others refuse in one line);
    ``--write-records`` also needs ``--pool``, the sharded pool the features were computed from."""
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


def _engine_features(args: argparse.Namespace) -> frozenset[str]:
    """The features ``select --engine`` computes, after refusing missing or unpaired models: the QSM score and the
    embedding (``--qsm`` + ``--encoder``: required unless the method reads neither and ``--ifd-model`` is given) and
    IFD (``--ifd-model``: required by ``ifd``)."""
    from mdaq.selectors import SELECTORS
    from mdaq.selectors.streamed import BLOCK_FEATURES

    requires = SELECTORS.get(args.method).requires
    why = f"with --engine for {args.method} (the models its feature shards come from)"
    need_scores = bool(requires & BLOCK_FEATURES) or not args.ifd_model
    check_model_options(args, need_scores=need_scores, need_ifd="ifd" in requires, why=why)
    return (BLOCK_FEATURES if args.qsm else frozenset()) | (frozenset({"ifd"}) if args.ifd_model else frozenset())


def select_with_engine(args: argparse.Namespace, params: dict) -> int:
    """``mdaq select --pool SHARDS --engine local|ray``: compute (or resume) the pool's feature shards in
    ``--features-out`` (default ``<out>.features``), then select from them as ``--features FEATURE_DIR`` does
    (:func:`streamed_selection`). Everything that would be refused is refused before a feature is computed."""
    from mdaq.io import check_distinct
    from mdaq.selectors.streamed import check_streamable
    from mdaq.shards import is_shard_source

    for flag, given in {"--features": args.features, "--pooled": args.pooled, "--ifd": args.ifd}.items():
        if given:
            raise DataError(flag, "not with --engine, which computes the features of one language's sharded pool")
    if not args.pool:
        raise DataError("--pool", "required with --engine (the sharded pool its features come from)")
    features = _engine_features(args)
    if not is_shard_source(args.pool):
        raise DataError(args.pool, "--engine needs a sharded pool, a folder or glob of Parquet shards (data shard)")
    out = Path(args.features_out or f"{args.out}.features")
    check_distinct(args.out, {"--features-out": out})
    if args.write_records:
        check_distinct(args.write_records, {"--pool": args.pool, "--out": args.out, "--features-out": out})
    lang, n_rows = _pool_lang(args.pool, args.lang)
    check_streamable(args.method, params, n_rows, args.seed, features=features)
    engine = args.engine or "local"
    manifest = run_features(args, out, engine)
    selected = streamed_selection(args, params, out, lang)
    summary = {"method": args.method, "pool": str(args.pool), "lang": lang, "engine": engine, "features": str(out)}
    summary |= {k: manifest[k] for k in ("n_shards", "n_computed", "n_kept")}
    summary |= {"features_seconds": manifest["seconds"], "kmeans_engine": selected["engine"]}
    print(json.dumps(summary | {k: v for k, v in selected.items() if k not in summary and k != "engine"}))
    return 0


def add_select(sub: argparse._SubParsersAction) -> None:
    """Register ``mdaq select`` on the top-level subparsers."""
    se = sub.add_parser("select", help="select from a pool file with one method; writes selection JSONL rows")
    se.add_argument("--method", required=True, help="a registered method (`mdaq ls`)")
    se.add_argument(
        "--pool",
        default=None,
        help="mdaq pool JSONL, or Alpaca/ShareGPT JSON(L), CSV, Parquet (not read with a feature-shard --features)",
    )
    se.add_argument("--budget", type=int, required=True, help="per language (pooled: in total)")
    se.add_argument("--out", required=True, help="selection JSONL: rank, index (line in --pool), id, lang, method")
    se.add_argument("--params", default=None, help="selector hyperparameters as JSON, e.g. '{\"lam\": 0.5}'")
    se.add_argument("--seed", type=int, default=0)
    se.add_argument(
        "--lang",
        default=None,
        help="language of a pool file whose records carry none; of a feature folder (required); of an --engine pool "
        "(default: read from it)",
    )
    se.add_argument("--format", default="auto", help="pool format (auto, alpaca, sharegpt, table, ...)")
    se.add_argument(
        "--features",
        default=None,
        help="folder with quality.npy / embeddings.npy aligned with --pool; or a feature-shard folder written by "
        "`mdaq features`: the selection then streams over it and --pool is not read (docs/scale.md)",
    )
    se.add_argument("--ifd", default=None, help="folder with ifd.npy aligned with --pool")
    se.add_argument("--qsm", default=None, help="saved QSM folder: score the pool when quality is needed")
    se.add_argument("--encoder", default=None, help="encoder folder: embed the pool when embeddings are needed")
    se.add_argument(
        "--ifd-model",
        default=None,
        help="causal LM folder: compute IFD when the method needs it (with --engine: into the feature shards)",
    )
    se.add_argument("--pooled", action="store_true", help="select across languages at once, with quotas")
    se.add_argument("--quota", default="equal", choices=("equal", "proportional", "temperature"))
    se.add_argument("--temperature", type=float, default=1.0)
    se.add_argument("--device", default="auto")
    add_ifd_options(se)
    add_select_engine(se)
    se.set_defaults(fn=select_command)


def add_select_engine(se: argparse.ArgumentParser) -> None:
    """Add ``mdaq select``'s one-command options for a sharded pool (``--engine`` and what goes with it)."""
    se.add_argument(
        "--engine",
        choices=ENGINES,
        default=None,
        help="compute the feature shards of a sharded --pool (of one language) here (local) or on Ray Data, then "
        "select streamed over them; needs --qsm and --encoder, or --ifd-model for ifd (docs/scale.md)",
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
