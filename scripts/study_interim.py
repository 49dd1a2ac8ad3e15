"""Interim look at a study's committed runs: the board's paired statistics on the languages whose arms are all in.

A study (``scripts/study.sh``) is finished over several sittings; its ``leaderboard`` stage needs every run. Between
sittings this script computes, with the leaderboard's own code (``mdaq.reporting.leaderboard``: seed-averaged per-item
records, paired bootstrap intervals stratified by language, sign tests, Holm over the rows of each comparison, the
control check), the same numbers restricted to the languages in which every arm of the study has run::

    python scripts/study_interim.py studies/study            # every language that is complete
    python scripts/study_interim.py studies/study --langs de

It prints Markdown. An interim look is not the pre-specified analysis (both languages, ``docs/study-power.md``): say
which languages it covers wherever it is quoted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def complete_langs(runs_dir: Path, params) -> list[str]:
    """Languages in which the base row and every method with each of its seeds have ``metrics.json``."""
    from mdaq.provenance import BASE

    out = []
    for lang in params.languages:
        needed = [(BASE, 0)] + [(m, s) for m in params.methods for s in params.seeds_of(m)]
        if all((runs_dir / m / lang / f"s{s}" / "metrics.json").is_file() for m, s in needed):
            out.append(lang)
    return out


def interim(study: Path, langs: list[str] | None = None) -> str:
    """The Markdown report of ``study`` (a ``studies/<profile>`` snapshot) on ``langs`` (default: complete ones)."""
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
    langs = langs or complete_langs(runs_dir, params)
    if not langs:
        raise SystemExit(f"{runs_dir}: no language has every arm of {params.methods} and the base row yet")
    methods = [BASE, *params.methods]
    seeds = {m: params.seeds_of(m) for m in params.methods}
    runs = load_runs(runs_dir, methods, langs, seeds)
    records = seed_averaged_records(runs)
    roles = {
        m: str(runs[m][langs[0]][0][1].get("role", "base" if m == BASE else "method")) for m in methods
    }  # as the board
    report = paired_report(records, roles, params)
    lines = [
        f"Interim look at `{study}` on {', '.join(langs)} ({len(next(iter(records.values())))} held-out pairs; "
        f"revision `{(study / 'study-rev').read_text().strip()[:7]}`)",
        "",
        "| arm | accuracy ± SE | NLL ± SE | margin |",
        "|---|---:|---:|---:|",
    ]
    for m in methods:
        per_seed = [float(it["correct"].mean()) for by in runs[m].values() for _, _, it in by]
        f = _accuracy_fields(records[m], per_seed)
        lines.append(
            f"| {m} | {f['expert_pref_acc']:.3f} ± {f['expert_pref_acc_se']:.3f} | {f['ref_nll']:.3f} ± "
            f"{f['ref_nll_se']:.3f} | {f['margin']:+.4f} |"
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
    args = ap.parse_args()
    print(interim(args.study, args.langs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
