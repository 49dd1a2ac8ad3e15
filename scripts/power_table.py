"""Power analysis for the study profile (docs/study-power.md): minimum detectable differences of paired contrasts on
the same held-out pairs, and the discordance a pilot run shows.

    python scripts/power_table.py                    # the MDD table
    python scripts/power_table.py --pilot results/runs --a mdaq_das --b full

The primary contrast is a paired difference in expert-preference accuracy between two methods on the same N held-out
pairs; its minimum detectable difference (80% power, two-sided alpha 0.05, exact sign test ~ McNemar) depends on N
and on the share of discordant pairs psi (pairs where exactly one of the two models prefers the revision).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mdaq.io import read_items  # noqa: E402
from mdaq.stats import mdd_paired_binary, seed_average, simulated_power  # noqa: E402


def mdd_table(ns=(300, 450, 600, 900), psis=(0.05, 0.1, 0.2, 0.3), alpha=0.05, power=0.8) -> pd.DataFrame:
    rows = []
    for psi in psis:
        row = {"psi": psi}
        for n in ns:
            try:
                row[f"N={n}"] = mdd_paired_binary(n, psi, alpha=alpha, power=power)
            except ValueError:
                row[f"N={n}"] = float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def pilot(runs_dir: Path, a: str, b: str) -> dict:
    """Discordance and accuracy difference of methods a and b in a finished run folder (all languages, all seeds)."""

    def records(method):
        frames = {}
        for path in sorted((runs_dir / method).glob("*/s*/items.csv")):
            frames.setdefault(path.parent.name, []).append(read_items(path))
        return [pd.concat(v, ignore_index=True) for _, v in sorted(frames.items())]

    ra, rb = records(a), records(b)
    out = {"n_seeds": (len(ra), len(rb))}
    first = ra[0].merge(rb[0], on=["lang", "item"], suffixes=("_a", "_b"))  # one seed: binary discordance
    out["n"] = len(first)
    out["psi_seed0"] = float((first["correct_a"] != first["correct_b"]).mean())
    avg = seed_average(ra).merge(seed_average(rb), on=["lang", "item"], suffixes=("_a", "_b"))
    diff = avg["correct_a"] - avg["correct_b"]
    out["d_acc"] = float(diff.mean())
    out["sd_diff_seed_avg"] = float(diff.std(ddof=1))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pilot", type=Path, default=None, help="a results/runs folder to estimate psi from")
    ap.add_argument("--a", default="mdaq_das")
    ap.add_argument("--b", default="full")
    ap.add_argument("--check", action="store_true", help="Monte-Carlo power of the exact sign test at the MDD")
    args = ap.parse_args()
    table = mdd_table()
    print("Minimum detectable difference in accuracy (paired, 80% power, two-sided alpha 0.05):")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if args.check:
        for psi in (0.1, 0.2):
            d = mdd_paired_binary(900, psi)
            print(f"simulated power, N=900 psi={psi} delta={d:.3f}: {simulated_power(d, psi, 900, n_sim=4000):.3f}")
    if args.pilot is not None:
        print(f"pilot {args.a} vs {args.b} in {args.pilot}: {pilot(args.pilot, args.a, args.b)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
