"""Judge-free evaluation speed: lm-eval's tasks (mdaq/evaluation/lm_eval_tasks through lm_eval.simple_evaluate)
against mdaq's own
scorer (mdaq.evaluation.heldout, LM head on response tokens only), same model, adapter, pairs and precision, same run.

Each side is one whole call, model load included (both load the same model): one untimed warm-up call each (so
lm-eval's import and task setup are outside the timed calls, as mdaq's imports are), then ``--repeats`` rounds in
alternating order; the best time of each is compared (benchmarks/_timing.py).

    python benchmarks/bench_eval_engines.py --n 20 [--base DIR] [--adapter DIR] [--precision auto] [--repeats 3]

Prints seconds per engine, their ratio and both metric sets (which agree to float rounding; tests/test_lmeval.py).
"""

from __future__ import annotations

import argparse
import json

from _timing import compare, machine

from mdaq.config import EvaluateConfig
from mdaq.evaluation.harness import run_judge_free
from mdaq.evaluation.heldout import evaluate_heldout
from mdaq.io import read_jsonl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="artifacts/base/gemma-3-270m")
    ap.add_argument("--adapter", default="artifacts/adapters/full/de")
    ap.add_argument("--heldout", default="artifacts/data/heldout/de.jsonl")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-seq-len", type=int, default=384)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cfg = EvaluateConfig(batch_size=args.batch_size, max_seq_len=args.max_seq_len, precision=args.precision)
    rows = read_jsonl(args.heldout)[: args.n]
    out: dict = {}

    def ours() -> None:
        out["mdaq"] = evaluate_heldout(args.base, args.adapter, rows, cfg)

    def lm_eval() -> None:
        out["lm_eval"] = run_judge_free(
            args.base,
            args.adapter,
            args.heldout,
            batch_size=args.batch_size,
            limit=args.n,
            max_seq_len=args.max_seq_len,
            precision=args.precision,
        )

    t = compare({"mdaq": ours, "lm_eval": lm_eval}, repeats=args.repeats)
    keys = ("expert_pref_acc", "ref_nll", "n", "n_ref_tokens")
    report = {
        "machine": machine(),
        "n_pairs": len(rows),
        "precision": out["mdaq"]["hardware"]["precision"],
        "mdaq_s": round(t["mdaq"]["best_s"], 2),
        "lm_eval_s": round(t["lm_eval"]["best_s"], 2),
        "runs": {k: v["runs"] for k, v in t.items()},
        "ratio_lm_eval_over_mdaq": round(t["lm_eval"]["best_s"] / t["mdaq"]["best_s"], 2),
        "mdaq": {k: out["mdaq"][k] for k in keys},
        "lm_eval": {k: out["lm_eval"][k] for k in keys},
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
