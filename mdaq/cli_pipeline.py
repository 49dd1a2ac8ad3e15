"""Command line, pipeline commands: ``python -m mdaq profile|study|submit ...`` (profiles and ``params.yaml``, study
snapshots, frozen pools and outside submissions). Registered by :func:`mdaq.cli.build_parser`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mdaq.errors import DataError, one_line


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
    if args.sub == "precision":
        import sys

        from mdaq.hardware import fast_bf16
        from mdaq.models.lm import resolve_device
        from mdaq.pipeline.studies import committed_precision, precision_plan

        committed = committed_precision(snap) if snap.is_dir() else None
        device = resolve_device("auto")
        fast, why = fast_bf16(device)
        print(precision_plan(committed, device, fast))
        print(f"study {args.profile}: committed runs {committed or 'none yet'}; here {device}, {why}", file=sys.stderr)
    elif args.sub == "save":
        saved = save_snapshot(args.work, snap)
        print(f"{snap} <- {args.work}: {', '.join(saved)}")
    elif snap.is_dir():
        print(f"{args.work} <- {snap}: {', '.join(restore_snapshot(snap, args.work))}")
    else:
        print(f"{snap}: no snapshot yet, the study starts afresh")
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
        print(f"error: {one_line(problem)}", file=sys.stderr)
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


def add_pipeline(sub: argparse._SubParsersAction) -> None:
    """Register ``mdaq profile``, ``mdaq study`` and ``mdaq submit`` on the top-level subparsers."""
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
        ("precision", "how this machine keeps the committed runs' precision: as-is | hide-cpu-bf16 (1: cannot)"),
    ):
        c = st_sub.add_parser(name, help=text)
        c.add_argument("profile")
        c.add_argument("--work", default=".", help="the folder DVC runs the study in (a git worktree)")
        c.add_argument("--repo", default=".", help="the repository whose studies/ holds the snapshot")
        c.add_argument("--snapshot", default=None, help="snapshot folder (default: <repo>/studies/<profile>)")
        c.set_defaults(fn=_study)
    _add_submit(sub)
