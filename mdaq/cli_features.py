"""``mdaq features`` (``docs/scale.md``): QSM scores and diversity embeddings, and with ``--ifd-model`` IFD, of a
sharded pool as Parquet feature shards, in this process or on Ray Data
(:func:`mdaq.features.engine.compute_feature_shards`); and the feature options ``mdaq select --engine`` shares
(:mod:`mdaq.cli_select`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mdaq.errors import DataError

ENGINES = ("local", "ray")  # mdaq.features.engine.ENGINES, spelled here so that `--help` imports no engine
IFD_OPTIONS = ("ifd_max_seq_len", "ifd_batch_size", "ifd_precision")  # add_ifd_options, as argparse names them


def _pick(value: Any, default: Any) -> Any:
    """A command-line value, or ``default`` where the flag was not given."""
    return default if value is None else value


def ifd_config(args: argparse.Namespace, params: Any = None) -> Any:
    """The :class:`~mdaq.config.IFDConfig` of ``--ifd-max-seq-len``, ``--ifd-batch-size``, ``--ifd-precision`` and
    ``--device``; a flag not given takes ``params.ifd`` (a loaded ``params.yaml``), else the dataclass default."""
    from mdaq.config import IFDConfig

    cfg = params.ifd if params else IFDConfig()
    return IFDConfig(
        max_seq_len=_pick(args.ifd_max_seq_len, cfg.max_seq_len),
        batch_size=_pick(args.ifd_batch_size, cfg.batch_size),
        device=args.device,
        precision=_pick(args.ifd_precision, cfg.precision),
    )


def check_ifd_options(args: argparse.Namespace) -> None:
    """Refuse IFD settings given without ``--ifd-model`` (nothing would read them)."""
    if not args.ifd_model:
        for name in IFD_OPTIONS:
            if getattr(args, name) is not None:
                raise DataError(f"--{name.replace('_', '-')}", "only with --ifd-model (a causal LM folder)")


def check_model_options(args: argparse.Namespace, *, need_scores: bool, need_ifd: bool, why: str) -> None:
    """Refuse a feature computation's models that are missing or unpaired: ``--ifd-model`` when ``need_ifd``;
    ``--qsm`` and ``--encoder`` when ``need_scores`` or either is given (one model pass computes the QSM score and
    the embedding together); IFD settings without ``--ifd-model``. ``why`` ends each message ("required <why>")."""
    if need_ifd and not args.ifd_model:
        raise DataError("--ifd-model", f"required {why}; a causal LM folder (safetensors) to compute IFD with")
    if need_scores or args.qsm or args.encoder:
        for flag, given in (("--qsm", args.qsm), ("--encoder", args.encoder)):
            if not given:
                raise DataError(flag, f"required {why}")
    check_ifd_options(args)


def run_features(args: argparse.Namespace, out: str | Path, engine: str, params: Any = None) -> dict[str, Any]:
    """Compute (or resume) the feature shards of ``args.pool`` into ``out`` with the options of
    :func:`add_feature_options` and :func:`add_ifd_options`, ``args.qsm``, ``args.encoder``, ``args.ifd_model`` and
    ``args.device``; a flag given on the command line wins over ``params`` (a loaded ``params.yaml``: its
    ``features``, ``ifd`` and ``ray`` sections), which wins over the defaults of :class:`~mdaq.config.FeaturesConfig`,
    :class:`~mdaq.config.IFDConfig` and :class:`~mdaq.config.RayConfig`. Returns the manifest of
    :func:`~mdaq.features.engine.compute_feature_shards`."""
    from mdaq.config import FeaturesConfig, RayConfig
    from mdaq.features.engine import compute_feature_shards
    from mdaq.features.spec import FeatureSpec

    feats = params.features if params else FeaturesConfig()
    ray = params.ray if params else RayConfig()
    ifd = ifd_config(args, params)
    spec = FeatureSpec(
        qsm_dir=None if args.qsm is None else str(args.qsm),
        encoder=None if args.encoder is None else str(args.encoder),
        embed_max_len=_pick(args.embed_max_len, feats.embed_max_len),
        batch_size=_pick(args.batch_size, feats.batch_size),
        precision=_pick(args.precision, feats.precision),
        device=args.device,
        chunk_rows=_pick(args.chunk_rows, FeatureSpec.chunk_rows),
        threads=_pick(args.threads, ray.threads_per_worker if engine == "ray" else 0),
        ifd_model=None if args.ifd_model is None else str(args.ifd_model),
        ifd_max_seq_len=ifd.max_seq_len,
        ifd_batch_size=ifd.batch_size,
        ifd_precision=ifd.precision,
    )
    return compute_feature_shards(
        args.pool,
        out,
        spec,
        engine=engine,
        workers=_pick(args.workers, ray.workers),
        ray_address=_pick(args.ray_address, ray.address) or None,
        gpus_per_worker=_pick(args.gpus_per_worker, ray.gpus_per_worker),
    )


FEATURE_KEYS = ("n_rows", "n_shards", "dim", "n_computed", "n_kept", "seconds")


def _features(args: argparse.Namespace) -> int:
    from mdaq.config import load_params

    why = "(with --encoder) to compute QSM scores and embeddings, unless --ifd-model alone computes IFD"
    check_model_options(args, need_scores=not args.ifd_model, need_ifd=False, why=why)
    manifest = run_features(args, args.out, args.engine, load_params(args.params) if args.params else None)
    summary = {"out": str(args.out), "engine": args.engine, "columns": list(manifest["columns"])}
    print(json.dumps(summary | {k: manifest[k] for k in FEATURE_KEYS}))
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


def add_ifd_options(parser: argparse.ArgumentParser) -> None:
    """IFD settings, wherever ``--ifd-model`` computes IFD (defaults: ``params.yaml``'s ``ifd`` section with
    ``mdaq features --params``, else :class:`~mdaq.config.IFDConfig`'s)."""
    parser.add_argument("--ifd-max-seq-len", type=int, default=None, help="IFD: tokens per sequence (default 192)")
    parser.add_argument("--ifd-batch-size", type=int, default=None, help="IFD: sequences per forward pass (8)")
    parser.add_argument("--ifd-precision", default=None, help="IFD: the causal LM's auto (default), fp32, bf16")


def add_features(sub: argparse._SubParsersAction) -> None:
    """Register ``mdaq features`` on the top-level subparsers."""
    fe = sub.add_parser(
        "features",
        help="QSM scores + embeddings (and IFD) of a sharded pool as Parquet feature shards, locally or on Ray "
        "(docs/scale.md)",
    )
    fe.add_argument("--pool", required=True, help="a folder of Parquet shards or a quoted glob ('pool/*.parquet')")
    fe.add_argument("--qsm", default=None, help="saved QSM folder (with --encoder; optional with --ifd-model)")
    fe.add_argument("--encoder", default=None, help="diversity encoder folder (e.g. artifacts/base/me5-small)")
    fe.add_argument(
        "--ifd-model",
        default=None,
        help="causal LM folder (e.g. artifacts/base/gemma-3-270m): also compute ifd, loss_conditional and "
        "loss_unconditional per row (two forward passes per row)",
    )
    fe.add_argument("--out", required=True, help="feature folder: one shard per pool shard; a rerun resumes it")
    fe.add_argument("--engine", choices=ENGINES, default="local")
    fe.add_argument("--params", default=None, help="params.yaml: its features, ifd and ray sections give the defaults")
    fe.add_argument("--device", default="auto")
    add_feature_options(fe)
    add_ifd_options(fe)
    fe.set_defaults(fn=_features)
