"""Clustering and selection at scale (issue 20, items 3 and 5), each against a baseline measured in the same run.

1. k-means, k = 1,000, on N x 384 float32 unit rows around 2,000 centres (default N = 1,000,000). The faiss path
   (``engine="faiss"``: trained on a seeded sample of k * 128 rows, 20 iterations, every row assigned) on all N
   rows: its FLOPs (2 N k d for the assignment, niter x 2 s k d for training on s rows) against the float32 GEMM
   rate of this machine at the k-means shape, measured in the same run (``ratio_to_floor`` = time / (FLOPs / GEMM
   rate)). Then faiss against the scikit-learn path the selectors use otherwise (``engine="sklearn"``:
   MiniBatchKMeans above 20,000 rows, batch 4,096, max_iter 100 with its own early stop) on the first
   ``--sklearn-n`` rows (default 100,000): on all 10^6 rows scikit-learn takes too long on 2 cores. Sides warmed
   up, alternating order, median of ``--repeats`` (a side over 10x slower than the other is timed once, its
   warm-up: see ``_timing.compare``).
2. Streamed DAS (``mdaq_das`` with its defaults: k = budget = 1,000, 6 : 1) over an N-row block stream made on the
   fly (10,000 rows a block, never all in memory), in a fresh process so its peak RSS is its own: wall time, the
   time of one bare pass over the generator (what a shard reader would cost instead), and peak RSS (goal <= 4 GB).

The load average is printed before and after: on a shared machine the times are upper bounds.

    .venv/bin/python benchmarks/bench_scale_cluster.py [--n 1000000] [--k 1000] [--budget 1000] [--sklearn-n 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from _timing import compare, machine

D = 384
N_CENTRES = 2000
BLOCK = 10_000


def make_block(i: int, n: int, centres: np.ndarray, seed: int = 0):
    """Block ``i`` (rows ``i * BLOCK`` ..) of the synthetic pool: unit rows near random centres, scores, ids."""
    from mdaq.shards.features import FeatureBlock

    start = i * BLOCK
    m = min(BLOCK, n - start)
    rng = np.random.default_rng((seed, i))
    x = centres[rng.integers(0, len(centres), m)] + 0.5 * rng.normal(size=(m, centres.shape[1])).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.array([f"{start + j:016x}" for j in range(m)])
    return FeatureBlock(ids, rng.normal(size=m).astype(np.float32), x)


def centres_of(d: int = D, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(N_CENTRES, d)).astype(np.float32)


def synthetic(n: int) -> np.ndarray:
    """The first ``n`` rows of the synthetic pool as one array."""
    centres = centres_of()
    x = np.empty((n, D), dtype=np.float32)
    for i in range(-(-n // BLOCK)):
        x[i * BLOCK : (i + 1) * BLOCK] = make_block(i, n, centres).embeddings
    return x


def gemm_gflops(k: int, d: int = D, rows: int = 8192, seconds: float = 1.0) -> float:
    """float32 GEMM rate at the k-means shape ((rows x d) @ (d x k)), best of repeated calls."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(rows, d)).astype(np.float32), rng.normal(size=(d, k)).astype(np.float32)
    a @ b
    best, t_end, calls = float("inf"), time.perf_counter() + seconds, 0
    while calls < 3 or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        a @ b
        best, calls = min(best, time.perf_counter() - t0), calls + 1
    return 2 * rows * d * k / best / 1e9


def bench_kmeans(n: int, k: int, repeats: int, sklearn_n: int) -> dict:
    """faiss alone on all ``n`` rows (time, FLOP/s, ratio to the GEMM floor), then faiss against scikit-learn on
    the first ``sklearn_n`` rows (0: skip), where scikit-learn's path is affordable on this machine."""
    from mdaq.selectors.algorithms import cluster_labels
    from mdaq.selectors.kmeans_scale import DEFAULT_SETTINGS as S

    x = synthetic(n)
    rate = gemm_gflops(k)

    def faiss_side(rows: np.ndarray) -> dict:
        return {"faiss": lambda: cluster_labels(rows, k, random_state=0, engine="faiss")}

    full = compare(faiss_side(x), repeats=repeats)["faiss"]
    s = S.sample_size(n, k)
    flops = S.niter * 2 * s * k * D + 2 * n * k * D
    out = {
        "n": n,
        "d": D,
        "k": k,
        "faiss": {**full, "sample": s, "niter": S.niter, "init": S.init},
        "faiss_gflops": round(flops / full["median_s"] / 1e9, 1),
        "gemm_gflops": round(rate, 1),
        "faiss_ratio_to_floor": round(full["median_s"] / (flops / (rate * 1e9)), 2),
    }
    if sklearn_n:
        sub = x[: min(sklearn_n, n)]
        sides = {**faiss_side(sub), "sklearn": lambda: cluster_labels(sub, k, random_state=0, engine="sklearn")}
        times = compare(sides, repeats=repeats)
        out["vs_sklearn"] = {
            "n": len(sub),
            "note": "scikit-learn timed on the first n rows only (MiniBatchKMeans on all rows takes too long here)",
            **times,
            "speedup_faiss_vs_sklearn": round(times["sklearn"]["median_s"] / times["faiss"]["median_s"], 2),
        }
    return out


def bench_das_child(n: int, budget: int) -> dict:
    """Run in a fresh process: streamed DAS over the synthetic block stream, wall time and peak RSS."""
    from mdaq.selectors.streamed import run_streamed

    centres = centres_of()
    n_blocks = -(-n // BLOCK)

    def blocks():
        return (make_block(i, n, centres) for i in range(n_blocks))

    t0 = time.perf_counter()
    for _ in blocks():
        pass
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = run_streamed("mdaq_das", None, blocks, budget, 0)  # default n_clusters="budget": k = budget
    wall = time.perf_counter() - t0
    return {
        "n": n,
        "k": run.n_clusters,
        "budget": budget,
        "engine": run.engine,
        "n_selected": len(run.ids),
        "parts": {p: int((run.parts == p).sum()) for p in ("quality", "diversity", "fill")},
        "wall_s": round(wall, 1),
        "one_generator_pass_s": round(t_gen, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--budget", type=int, default=1000, help="DAS budget; k = budget (mdaq_das's default rule)")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per side after the warm-up (median)")
    ap.add_argument("--sklearn-n", type=int, default=100_000, help="rows for the faiss-vs-sklearn ratio (0: skip)")
    ap.add_argument("--das-only", action="store_true", help=argparse.SUPPRESS)  # the child process of part 2
    args = ap.parse_args()
    if args.das_only:
        print(json.dumps(bench_das_child(args.n, args.budget)))
        return
    import faiss

    load_before = os.getloadavg()
    cmd = [sys.executable, __file__, "--das-only", "--n", str(args.n), "--budget", str(args.budget)]
    das = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    res = {
        "machine": {**machine(), "faiss": faiss.__version__, "faiss_threads": faiss.omp_get_max_threads()},
        "load_average_before": load_before,
        "streamed_das": das,
        "kmeans": bench_kmeans(args.n, args.k, args.repeats, args.sklearn_n),
        "load_average_after": os.getloadavg(),
    }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
