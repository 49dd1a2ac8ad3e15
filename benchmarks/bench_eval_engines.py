"""Judge-free evaluation speed: lm-eval's tasks (mdaq/lm_eval_tasks through lm_eval.simple_evaluate) against mdaq's own
scorer (mdaq.evaluate, LM head on response tokens only), same model, adapter, pairs and precision, same run.

    python benchmarks/bench_eval_engines.py --n 20 [--base DIR] [--adapter DIR] [--precision bf16]

Prints seconds per engine, their ratio and both metric sets (which agree to float rounding; tests/test_lmeval.py).
"""

from __future__ import annotations

import argparse
import json
import time

from mdaq.config import EvaluateConfig
from mdaq.evaluate import evaluate_heldout
from mdaq.io import read_jsonl
from mdaq.lmeval import run_judge_free


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="artifacts/base/gemma-3-270m")
    ap.add_argument("--adapter", default="artifacts/adapters/full/de")
    ap.add_argument("--heldout", default="artifacts/data/heldout/de.jsonl")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-seq-len", type=int, default=384)
    ap.add_argument("--precision", default="bf16")
    args = ap.parse_args()
    cfg = EvaluateConfig(batch_size=args.batch_size, max_seq_len=args.max_seq_len, precision=args.precision)
    rows = read_jsonl(args.heldout)[: args.n]
    evaluate_heldout(args.base, args.adapter, rows[:2], cfg)  # warm-up: imports, kernels
    t0 = time.perf_counter()
    ours = evaluate_heldout(args.base, args.adapter, rows, cfg)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    lme = run_judge_free(args.base, args.adapter, args.heldout, batch_size=args.batch_size, limit=args.n,
                         max_seq_len=args.max_seq_len, precision=args.precision)  # fmt: skip
    t_lme = time.perf_counter() - t0
    keys = ("expert_pref_acc", "ref_nll", "n", "n_ref_tokens")
    report = {"n_pairs": len(rows), "precision": args.precision, "mdaq_s": round(t_ours, 2),
              "lm_eval_s": round(t_lme, 2), "ratio_lm_eval_over_mdaq": round(t_lme / t_ours, 2),
              "mdaq": {k: ours[k] for k in keys}, "lm_eval": {k: lme[k] for k in keys}}  # fmt: skip
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
