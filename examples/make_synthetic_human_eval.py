"""Write a SYNTHETIC human-evaluation CSV (no human judged anything) to exercise ``mdaq human-eval`` end to end.

3 languages × 2 benchmarks × 10 items × 3 annotators. Each item gets a latent verdict drawn from per-(lang,
benchmark) probabilities; each annotator reports it with probability ``agree`` and otherwise one of the other two
verdicts at random. Seeded, so reruns give identical bytes::

    python examples/make_synthetic_human_eval.py --out examples/human_eval_synthetic.csv --seed 0
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

VERDICTS = ("model", "reference", "tie")
# (P(model wins), P(reference wins), P(tie)) of the latent verdict, per language and benchmark.
LATENT = {
    ("de", "alpaca_eval"): (0.60, 0.25, 0.15),
    ("de", "mt_bench_r1"): (0.50, 0.30, 0.20),
    ("ja", "alpaca_eval"): (0.45, 0.40, 0.15),
    ("ja", "mt_bench_r1"): (0.40, 0.40, 0.20),
    ("no", "alpaca_eval"): (0.70, 0.20, 0.10),
    ("no", "mt_bench_r1"): (0.55, 0.30, 0.15),
}
HEADER = ["language", "benchmark", "item", "annotator", "verdict", "model", "reference"]


def make_rows(seed: int = 0, n_items: int = 10, n_annotators: int = 3, agree: float = 0.7) -> list[list[str]]:
    """The CSV rows (without header) of the synthetic example."""
    rng = np.random.default_rng(seed)
    rows = []
    for (lang, benchmark), probs in LATENT.items():
        for k in range(n_items):
            latent = int(rng.choice(3, p=probs))
            for j in range(n_annotators):
                others = [v for v in range(3) if v != latent]
                vote = latent if rng.random() < agree else int(rng.choice(others))
                rows.append([lang, benchmark, f"{k:03d}", f"{lang}-a{j + 1}", VERDICTS[vote], "mdaq_das", "vanilla"])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="examples/human_eval_synthetic.csv")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write("# SYNTHETIC example, NOT human judgments: random verdicts written by\n")
        f.write(f"# examples/make_synthetic_human_eval.py --seed {args.seed} (format: docs/human-eval.md)\n")
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(make_rows(args.seed))


if __name__ == "__main__":
    main()
