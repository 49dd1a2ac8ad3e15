"""Selection at scale: DAS on synthetic pools and exact MMR, each against a baseline measured in the same run.

1. DAS: n samples (default 1,000,000) with d-dim embeddings (384): k-means clustering (k = 1,000, mini-batch)
   and Algorithm 1's selection; prints seconds and peak RSS. Goals on 2 cores: selection <= 1 s, clustering
   <= 60 s, peak memory <= 4 GB.
2. Exact MMR (n = 100,000, budget 1,000, d = 384): the incremental implementation vs a naive one that recomputes
   each candidate's max-similarity to the whole selected set at every step (timed on the first steps and
   extrapolated, since its cost grows with the step); and vs the floor of n·budget·d multiply-adds at this
   machine's measured matmul rate (goal: within 3x).

    .venv/bin/python benchmarks/bench_selection.py [--n 1000000] [--mmr-n 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from mdaq.selectors.algorithms import cluster_labels, das_select, mmr_select, mmr_select_naive, split_budget


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


def synthetic(n: int, d: int, n_topics: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm embeddings around ``n_topics`` centres plus a quality score, built in chunks (float32)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_topics, d)).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        x[s : s + m] = centres[rng.integers(0, n_topics, m)] + 0.5 * rng.normal(size=(m, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, rng.normal(size=n).astype(np.float32)


def matmul_gflops(size: int = 2048, reps: int = 3) -> float:
    a = np.random.default_rng(0).normal(size=(size, size)).astype(np.float32)
    a @ a
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ a
    return 2 * size**3 * reps / (time.perf_counter() - t0) / 1e9


def bench_das(n: int, d: int, k: int, budget: int) -> dict:
    x, q = synthetic(n, d, n_topics=2 * k)
    t0 = time.perf_counter()
    labels = cluster_labels(x, k, random_state=0, max_iter=20)
    t_cluster = time.perf_counter() - t0
    n_q, n_d = split_budget(budget, 6, 1)
    t0 = time.perf_counter()
    sel = das_select(q, labels, n_q, n_d)
    t_select = time.perf_counter() - t0
    return {
        "n": n,
        "d": d,
        "k": k,
        "budget": budget,
        "cluster_s": round(t_cluster, 2),
        "select_s": round(t_select, 3),
        "n_selected": len(sel),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }


def bench_mmr(n: int, d: int, budget: int, naive_steps: int) -> dict:
    x, q = synthetic(n, d, n_topics=500, seed=1)
    t0 = time.perf_counter()
    fast = mmr_select(q, x, budget, lam=0.7)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = mmr_select_naive(q, x, naive_steps, lam=0.7)
    t_naive_part = time.perf_counter() - t0
    assert np.array_equal(fast[:naive_steps], slow), "incremental and naive MMR disagree"
    # naive step s costs ~s matrix-vector products: total over `budget` steps ~ budget^2 / 2 of them
    t_naive = t_naive_part * (budget**2 / 2) / max(naive_steps**2 / 2, 1)
    floor_s = n * budget * d * 2 / (matmul_gflops() * 1e9)
    return {
        "n": n,
        "d": d,
        "budget": budget,
        "incremental_s": round(t_fast, 2),
        "naive_s_extrapolated": round(t_naive, 1),
        "speedup_vs_naive": round(t_naive / t_fast, 1),
        "floor_s": round(floor_s, 3),
        "ratio_to_floor": round(t_fast / floor_s, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--budget", type=int, default=7000)
    ap.add_argument("--mmr-n", type=int, default=100_000)
    ap.add_argument("--mmr-budget", type=int, default=1000)
    ap.add_argument("--naive-steps", type=int, default=60)
    args = ap.parse_args()
    res = {
        "mmr": bench_mmr(args.mmr_n, args.d, args.mmr_budget, args.naive_steps),
        "das": bench_das(args.n, args.d, args.k, args.budget),
    }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
