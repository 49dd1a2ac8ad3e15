"""The same runs under two settings: how far their per-pair preferences on the held-out pairs agree.

For every run folder ``<method>/<lang>/s<seed>/`` present under both ``A`` and ``B`` (say the study's fp32 runs and
the same runs trained and scored in bf16, ``studies/study-bf16-check``): accuracy under each, the number of pairs on
which both prefer the same response, the pairs only A / only B gets right, the Pearson correlation of the per-pair
margins and the per-token NLL of the revised responses under each::

    python scripts/run_agreement.py studies/study/results/runs studies/study-bf16-check/runs

Prints one Markdown row per run and a total row. Exits 1 when no run is in both.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def pair(a_path: Path, b_path: Path) -> dict:
    """Two runs' ``items.csv`` on the same held-out items: ``n, acc_a, acc_b, same, only_a, only_b, r, nll_a, nll_b``
    (``r``: Pearson correlation of the per-pair margins). Raises ValueError when the items differ."""
    from mdaq.io import read_items
    from mdaq.stats import ratio_nll

    a, b = read_items(a_path), read_items(b_path)
    if list(a["item"]) != list(b["item"]):
        raise ValueError(f"{b_path}: not the same held-out items as {a_path}")
    ca, cb = a["correct"].to_numpy(), b["correct"].to_numpy()
    return {
        "n": len(a),
        "acc_a": float(ca.mean()),
        "acc_b": float(cb.mean()),
        "same": int((ca == cb).sum()),
        "only_a": int(((ca == 1) & (cb == 0)).sum()),
        "only_b": int(((cb == 1) & (ca == 0)).sum()),
        "r": float(np.corrcoef(a["margin"], b["margin"])[0, 1]) if len(a) > 1 else float("nan"),
        "nll_a": float(ratio_nll(a["chosen_lp"], a["chosen_n"])[0]),
        "nll_b": float(ratio_nll(b["chosen_lp"], b["chosen_n"])[0]),
    }


def compare(a_dir: Path, b_dir: Path) -> list[dict]:
    """One :func:`pair` dict, with its ``run``, per run folder in both ``a_dir`` and ``b_dir``."""
    rows = []
    for a_path in sorted(a_dir.glob("*/*/s*/items.csv")):
        run = a_path.parent.relative_to(a_dir).as_posix()
        b_path = b_dir / run / "items.csv"
        if b_path.is_file():
            rows.append({"run": run, **pair(a_path, b_path)})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path, help="a runs folder (<method>/<lang>/s<seed>/items.csv)")
    ap.add_argument("b", type=Path, help="another runs folder: the runs of A under another setting")
    args = ap.parse_args()
    rows = compare(args.a, args.b)
    if not rows:
        print(f"no run is in both {args.a} and {args.b}", file=sys.stderr)
        return 1
    print(f"A = `{args.a}`, B = `{args.b}`\n")
    print("| run | pairs | accuracy A | accuracy B | same | only A right | only B right | margin r | NLL A | NLL B |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['run']} | {r['n']} | {r['acc_a']:.3f} | {r['acc_b']:.3f} | {r['same']} | {r['only_a']} | "
            f"{r['only_b']} | {r['r']:.4f} | {r['nll_a']:.3f} | {r['nll_b']:.3f} |"
        )
    n, same = sum(r["n"] for r in rows), sum(r["same"] for r in rows)
    only_a, only_b = sum(r["only_a"] for r in rows), sum(r["only_b"] for r in rows)
    print(f"| all | {n} | | | {same} ({same / n:.1%}) | {only_a} | {only_b} | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
