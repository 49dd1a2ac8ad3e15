"""Train QSM variants and compare them on every held-out pair: regenerates docs/qsm-variants.md (issue 17).

Each argument is NAME=JSON, overrides of `params.yaml: qsm` applied on top of the paper-faithful settings
(mdaq.quality.sweep.PAPER_FAITHFUL); the paper-faithful reference `paper={}` is added when not given. The pairs come
straight from the MIDB files through the prepare split (mdaq.data.split): the `qsm_train` block for training, the
held-out block for evaluation, all of it unless `--eval-max N` caps it per language (the `prepare.qsm_eval_max`
rule). The table's command line, as run for docs/qsm-variants.md:

    nohup .venv/bin/python scripts/qsm_sweep.py 'normalize={"normalize": true}' \\
        'balance={"length_balance": 0.5}' 'cross={"kind": "cross"}' \\
        'early_stop={"epochs": 3, "val_share": 0.1, "patience": 1}' \\
        'normalize_balance={"normalize": true, "length_balance": 0.5}' \\
        'cross_balance={"kind": "cross", "length_balance": 0.5}' > qsm_sweep.log 2>&1 &

Resumable: each variant's per-pair results are kept in `--work-dir/<name>/` with a fingerprint of everything that
determines them, and a rerun reuses them; an interrupted training resumes from its checkpoint there. The model
folders are deleted once a variant is scored. Needs `dvc repro assets_encoder` (the encoder) and the MIDB files.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from mdaq.config import QSMConfig, load_profile, params_from_dict
from mdaq.data.midb import available_langs, load_pairs, midb_path
from mdaq.data.split import split_language
from mdaq.io import atomic_path, read_json, write_json
from mdaq.models.checkpoint import run_fingerprint
from mdaq.names import check_name
from mdaq.quality import sweep
from mdaq.quality.evaluate import length_scorer, score_table
from mdaq.quality.surface import SurfaceBaseline
from mdaq.quality.train import select_training_rows, train_qsm

log = logging.getLogger("qsm_sweep")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variants", nargs="*", metavar="NAME=JSON", help="qsm overrides of one variant")
    p.add_argument("--params", default="params.yaml", help="profile whose qsm/prepare/seed settings are used")
    p.add_argument("--midb", default="data/midb", help="MIDB folder (MIDB_train/<Language>.json)")
    p.add_argument("--encoders", default="artifacts/encoders", help="folder holding the qsm.encoder asset")
    p.add_argument("--eval-max", type=int, default=0, help="held-out pairs per language (0 = all)")
    p.add_argument("--work-dir", default="artifacts/qsm_sweep", help="per-variant results, for resuming")
    p.add_argument("--out", default="docs/qsm-variants.md", help="the Markdown table")
    args = p.parse_args(argv)
    if args.eval_max < 0:
        p.error("--eval-max must be >= 0 (0 = every held-out pair)")
    return args


def parse_variants(specs: list[str]) -> dict[str, dict[str, Any]]:
    """``{name: overrides}`` in command-line order, the reference first (added as ``paper={}`` when absent)."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        name, sep, text = spec.partition("=")
        if not sep:
            raise SystemExit(f'variant {spec!r}: expected NAME=JSON, e.g. \'cross={{"kind": "cross"}}\'')
        check_name(name, "<command line>", field="variant")
        overrides = json.loads(text)
        if not isinstance(overrides, dict) or name in out:
            raise SystemExit(f"variant {name!r}: overrides must be a JSON object and names unique")
        out[name] = overrides
    return {sweep.REFERENCE: out.pop(sweep.REFERENCE, {}), **out}


def split_pairs(midb: Path, profile: dict[str, Any], eval_max: int) -> tuple[dict, dict, int]:
    """``qsm_train`` rows and held-out rows (capped at ``eval_max`` per language, 0 = all) of every language, as
    the prepare stage splits them; and the seed."""
    params = params_from_dict(profile, "<params>")
    prepare = dataclasses.replace(params.prepare, qsm_eval_max=eval_max)
    train, held = {}, {}
    for lang in available_langs(midb):
        path = midb_path(midb, "MIDB_train", lang)
        rows, _ = split_language(load_pairs(path, lang), prepare, params.seed, f"MIDB_train/{path.name}")
        train[lang], held[lang] = rows["qsm_train"], rows["qsm_heldout"]
    if not held:
        raise SystemExit(f"no MIDB_train files under {midb}")
    return train, held, params.seed


def run_variant(
    name: str, cfg: QSMConfig, rows: list[dict], held: dict, encoder: Path, seed: int, work: Path
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train (or resume) one variant, score every held-out pair, keep the per-pair table; a finished variant with
    the same fingerprint is read back instead."""
    folder = work / name
    ids = {lang: [r["id"] for r in held[lang]] for lang in sorted(held)}
    fingerprint = run_fingerprint(str(encoder), dataclasses.asdict(cfg), seed, [r["source_index"] for r in rows], ids)
    record_file, pairs_file = folder / "record.json", folder / "pairs.csv"
    if record_file.is_file() and pairs_file.is_file() and read_json(record_file)["fingerprint"] == fingerprint:
        log.info("%s: reusing the results in %s", name, folder)
        return pd.read_csv(pairs_file, keep_default_na=False, na_values=[""]), read_json(record_file)
    log.info("%s: training on %d pairs (%s)", name, len(rows), json.dumps(dataclasses.asdict(cfg)))
    resumed = (folder / "ckpt" / "state.json").is_file()  # then train_s counts only this process's part
    t0 = time.perf_counter()
    model = train_qsm(encoder, rows, cfg, folder / "model", seed=seed, ckpt_dir=folder / "ckpt")
    train_s = time.perf_counter() - t0
    log.info("%s: trained in %.0f s; scoring %d held-out pairs", name, train_s, sum(map(len, held.values())))
    t0 = time.perf_counter()
    pairs = score_table({name: model.score}, held, cfg.unseen_langs)
    score_s = time.perf_counter() - t0
    rec = model.train_record_
    record = {
        "fingerprint": fingerprint,
        "train_s": round(train_s, 1),
        "score_s": round(score_s, 1),
        "resumed": resumed,
        "train_record": {k: v for k, v in rec.items() if k not in ("losses", "config")},
    }
    with atomic_path(pairs_file) as tmp:
        pairs.to_csv(tmp, index=False)
    write_json(record_file, record)
    shutil.rmtree(folder / "model", ignore_errors=True)
    shutil.rmtree(folder / "ckpt", ignore_errors=True)
    log.info("%s: scored in %.0f s", name, score_s)
    return pd.read_csv(pairs_file, keep_default_na=False, na_values=[""]), record


def note(record: dict[str, Any]) -> str:
    """Training facts for the table: pairs, share where the revision is not longer, epochs run / best."""
    rec = record["train_record"]
    text = f"{rec['n_pairs']} pairs, {rec['share_rev_not_longer']:.0%} not longer"
    if "best_epoch" in rec:
        text += f", {rec['n_val_pairs']} validation; epochs run {rec['epochs_run']}, kept {rec['best_epoch']}"
    if record["resumed"]:
        text += "; resumed from a checkpoint (train s: the resumed part only)"
    return text


def main(argv: list[str]) -> None:
    from mdaq.hardware import cpu_info, set_threads
    from mdaq.provenance import git_sha

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    profile = load_profile(args.params)
    variants = parse_variants(args.variants)
    cfgs = {name: sweep.variant_qsm(profile, over, f"variant {name}") for name, over in variants.items()}
    train, held, seed = split_pairs(Path(args.midb), profile, args.eval_max)
    ref = cfgs[sweep.REFERENCE]
    plan = set_threads()
    parts, info = [], {}
    for name, cfg in cfgs.items():
        rows = select_training_rows(train, cfg, seed)
        pairs, record = run_variant(
            name, cfg, rows, held, Path(args.encoders) / cfg.encoder, seed, Path(args.work_dir)
        )
        parts.append(pairs)
        info[name] = {"overrides": variants[name], **record, "note": note(record)}
    ref_rows = select_training_rows(train, ref, seed)
    baselines = {"surface": SurfaceBaseline(seed=seed).fit(ref_rows).score, "length": length_scorer}
    parts.append(score_table(baselines, held, ref.unseen_langs))
    pairs = pd.concat(parts, ignore_index=True)
    acc = sweep.pooled_accuracy(pairs)
    tests = sweep.tests_against_reference(pairs, list(cfgs), seed=seed)
    decision = sweep.decide(acc, tests)
    import torch

    meta = {  # the encoder, threads and CPU the variants ran with (mdaq.hardware chose the threads)
        "command": "python scripts/qsm_sweep.py " + shlex.join(argv),
        "date": dt.date.today().isoformat(),
        "git_sha": git_sha(),
        "cpu_model": cpu_info().model,
        "torch_threads": plan.threads,
        "torch_version": torch.__version__,
        "encoder": str(Path(args.encoders) / ref.encoder),
        "qsm": dataclasses.asdict(ref),
        "n_train": len(ref_rows),
        "langs_seen": sorted(set(train) - set(ref.unseen_langs)),
        "langs_unseen": sorted(set(train) & set(ref.unseen_langs)),
        "eval_max": args.eval_max,
        "n_langs": len(held),
        "precision": info[sweep.REFERENCE]["train_record"]["hardware"]["precision"],
        "default_is": next((n for n, c in cfgs.items() if c == params_from_dict(profile, args.params).qsm), None),
    }
    sweep.write_markdown(args.out, sweep.render_markdown(acc, tests, decision, info, meta))
    print(json.dumps({"out": args.out, "winner": decision["winner"], "verdicts": decision["verdicts"]}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
