"""How far each trained model moved from the un-tuned base model on the held-out pairs of a board.

For every run under ``RUNS_DIR/<method>/<lang>/s<seed>/items.csv`` and the ``base`` run of its language: the number of
pairs on which the run prefers the same response as ``base`` (same ``correct``), and the Pearson correlation of the
per-pair margins (length-normalised log-likelihood of the revised minus the raw response). A board whose trained
models all agree with ``base`` on every pair, with margins correlated near 1, has adapters that did not change which
response the model prefers: the README quotes this for the default profile::

    python scripts/base_agreement.py results/runs [--seed 0]

Prints one Markdown row per run and a summary line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # run_agreement.pair, however this file is loaded


def agreement(runs_dir: Path, seed: int | None = 0) -> list[dict]:
    """One dict per run (``method, lang, seed, n, same, r``), ``base`` itself left out; ``seed=None``: every seed."""
    from run_agreement import pair

    rows = []
    for items_path in sorted(runs_dir.glob("*/*/s*/items.csv")):
        run = items_path.parent
        method, lang, s = run.parent.parent.name, run.parent.name, int(run.name[1:])
        if method == "base" or (seed is not None and s != seed):
            continue
        base_path = runs_dir / "base" / lang / "s0" / "items.csv"
        if not base_path.is_file():
            raise FileNotFoundError(f"{base_path}: no base run for {lang}")
        p = pair(base_path, items_path)
        rows.append({"method": method, "lang": lang, "seed": s, "n": p["n"], "same": p["same"], "r": p["r"]})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs_dir", type=Path)
    ap.add_argument("--seed", type=int, default=0, help="the seed of the runs to compare (-1: every seed)")
    args = ap.parse_args()
    rows = agreement(args.runs_dir, None if args.seed < 0 else args.seed)
    if not rows:
        raise SystemExit(f"{args.runs_dir}: no trained runs with items.csv")
    print("| method | lang | seed | pairs | same as base | margin r |\n|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['lang']} | {r['seed']} | {r['n']} | {r['same']} | {r['r']:.4f} |")
    by_model: dict = {}
    for r in rows:
        key = (r["method"], r["seed"])
        n, same = by_model.get(key, (0, 0))
        by_model[key] = (n + r["n"], same + r["same"])
    rs = [r["r"] for r in rows]
    agree_all = sum(same == n for n, same in by_model.values())
    print(
        f"\n{agree_all} of {len(by_model)} trained models prefer the same response as `base` on every pair; "
        f"per-pair margins correlate with `base`'s at {min(rs):.4f}-{max(rs):.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
