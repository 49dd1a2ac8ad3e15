"""Interim look at a study's committed runs: the board's paired statistics on the languages whose arms are all in.

A study (``scripts/study.sh``) is finished over several sittings; its ``leaderboard`` stage needs every run. Between
sittings this script computes, with the leaderboard's own code (``mdaq.reporting.leaderboard``: seed-averaged per-item
records, paired bootstrap intervals stratified by language, sign tests, Holm over the rows of each comparison, the
control check), the same numbers restricted to the languages in which every arm of the study has run::

    python scripts/study_interim.py studies/study            # every language that is complete
    python scripts/study_interim.py studies/study --langs de
    python scripts/study_interim.py studies/study --seeds committed   # a design still growing its seeds
    python scripts/study_interim.py studies/study --seeds first       # each arm's first seed only
    python scripts/study_interim.py studies/study --drop mdaq_das:2   # a sensitivity analysis without one run

``--seeds committed`` uses, for every arm, the seeds of the design whose runs are committed in every covered language
(a language counts when every arm has at least one): the seed-averaged per-pair records then average over those seeds
only, and the report names them. ``--seeds first`` uses each arm's first committed seed: the one-seed analysis a
study pre-specified before it grew more seeds (``docs/study-power.md``). It prints Markdown. An interim look is not
the pre-specified analysis (both languages, one seed): say which languages and seeds it covers wherever it is quoted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


SEED_MODES = ("design", "committed", "first")


def _has(runs_dir: Path, method: str, lang: str, seed: int) -> bool:
    return (runs_dir / method / lang / f"s{seed}" / "metrics.json").is_file()


def complete_langs(runs_dir: Path, params, committed: bool = False) -> list[str]:
    """Languages in which the base row and every method with each of its seeds have ``metrics.json``; with
    ``committed``, languages in which the base row and every method with at least one of its seeds have one."""
    from mdaq.provenance import BASE

    out = []
    for lang in params.languages:
        if not _has(runs_dir, BASE, lang, 0):
            continue
        have = [[_has(runs_dir, m, lang, s) for s in params.seeds_of(m)] for m in params.methods]
        if all(any(h) if committed else all(h) for h in have):
            out.append(lang)
    return out


def committed_seeds(runs_dir: Path, params, langs: list[str]) -> dict[str, list[int]]:
    """For every method, the seeds of the design whose runs have ``metrics.json`` in every one of ``langs``."""
    seeds = {m: [s for s in params.seeds_of(m) if all(_has(runs_dir, m, g, s) for g in langs)] for m in params.methods}
    missing = [m for m, s in seeds.items() if not s]
    if missing:
        raise SystemExit(f"{runs_dir}: no seed of {missing} has run in every one of {langs}")
    return seeds


def interim(
    study: Path, langs: list[str] | None = None, seed_mode: str = "design", drop: list[str] | None = None
) -> str:
    """The Markdown report of ``study`` (a ``studies/<profile>`` snapshot) on ``langs`` (default: complete ones);
    ``seed_mode``: ``design`` (every seed of the design), ``committed`` (the seeds of each arm whose runs are in,
    :func:`committed_seeds`) or ``first`` (each arm's first committed seed); ``drop``: ``method:seed`` runs to leave
    out (a sensitivity analysis), in every language."""
    if seed_mode not in SEED_MODES:
        raise ValueError(f"seed_mode must be one of {SEED_MODES}, got {seed_mode!r}")
    committed = seed_mode != "design"
    from mdaq.config import load_params
    from mdaq.provenance import BASE
    from mdaq.reporting.leaderboard import (
        _accuracy_fields,
        controls_sentence,
        load_runs,
        paired_report,
        seed_averaged_records,
    )

    params = load_params(study / "params.yaml")
    runs_dir = study / "results" / "runs"
    langs = langs or complete_langs(runs_dir, params, committed)
    if not langs:
        raise SystemExit(f"{runs_dir}: no language has every arm of {params.methods} and the base row yet")
    methods = [BASE, *params.methods]
    seeds = committed_seeds(runs_dir, params, langs) if committed else {m: params.seeds_of(m) for m in params.methods}
    if seed_mode == "first":
        seeds = {m: s[:1] for m, s in seeds.items()}
    for spec in drop or []:
        method, _, seed = spec.partition(":")
        if method not in seeds or not seed.isdigit() or int(seed) not in seeds[method]:
            raise SystemExit(f"--drop {spec}: not a method:seed of this analysis ({seeds})")
        seeds[method] = [s for s in seeds[method] if s != int(seed)]
        if not seeds[method]:
            raise SystemExit(f"--drop {spec}: leaves {method} without a seed")
    runs = load_runs(runs_dir, methods, langs, seeds)
    records = seed_averaged_records(runs)
    roles = {
        m: str(runs[m][langs[0]][0][1].get("role", "base" if m == BASE else "method")) for m in methods
    }  # as the board
    report = paired_report(records, roles, params)
    lines = [
        f"Interim look at `{study}` on {', '.join(langs)} ({len(next(iter(records.values())))} held-out pairs; "
        f"revision `{(study / 'study-rev').read_text().strip()[:7]}`; training seeds "
        + "; ".join(f"{m} {', '.join(map(str, s))}" for m, s in seeds.items())
        + "; per-pair correctness averaged over an arm's seeds)",
        "",
        "| arm | seeds | accuracy ± SE | seed SD | NLL ± SE | margin |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in methods:
        # per seed: the accuracy over every covered language, as the board's `seed SD`
        per_seed = [
            float(np.mean(np.concatenate([runs[m][g][i][2]["correct"].to_numpy() for g in langs])))
            for i in range(len(runs[m][langs[0]]))
        ]
        f = _accuracy_fields(records[m], per_seed)
        sd = "–" if len(per_seed) < 2 else f"{f['acc_seed_sd']:.3f}"
        lines.append(
            f"| {m} | {len(per_seed)} | {f['expert_pref_acc']:.3f} ± {f['expert_pref_acc_se']:.3f} | {sd} | "
            f"{f['ref_nll']:.3f} ± {f['ref_nll_se']:.3f} | {f['margin']:+.4f} |"
        )
    comp = report["comparisons"]
    if len(comp):
        comp = comp[comp["scope"] == "all"]
        lines += [
            "",
            "| arm | against | Δ accuracy [95% CI] | better : worse | p (sign) | p (Holm) | Δ NLL [95% CI] |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in comp.itertuples():
            lines.append(
                f"| {r.method} | {r.against} | {r.d_acc:+.3f} [{r.d_acc_lo:+.3f}, {r.d_acc_hi:+.3f}] | "
                f"{r.n_a_better} : {r.n_b_better} | {r.p_acc:.3g} | {r.p_acc_holm:.3g} | "
                f"{r.d_nll:+.3f} [{r.d_nll_lo:+.3f}, {r.d_nll_hi:+.3f}] |"
            )
    lines += ["", controls_sentence(report["controls"])]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", type=Path, help="a study snapshot folder, e.g. studies/study")
    ap.add_argument("--langs", nargs="+", default=None, help="languages to cover (default: every complete one)")
    ap.add_argument(
        "--seeds",
        choices=SEED_MODES,
        default="design",
        help="every seed of the design (default), the seeds of each arm whose runs are committed, or the first one",
    )
    ap.add_argument(
        "--drop", nargs="+", default=None, metavar="METHOD:SEED", help="runs to leave out, e.g. mdaq_das:2"
    )
    args = ap.parse_args()
    print(interim(args.study, args.langs, args.seeds, args.drop))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
