"""`mdaq select --pool SHARDS --engine ...` end to end on a large synthetic pool: wall time, throughput and peak memory
(issue 20: a 1M-sample sharded pool, peak RSS goal <= 4 GB).

The pool is built from one MIDB language's raw and revised texts (``select --engine`` takes a pool of one language),
cycled with a ``(#k)`` suffix so every id is unique; the QSM and the encoder are the tiny random BERT of
``bench_scale_ray.py`` (hidden 32, 2 layers, the real multilingual-e5 tokenizer), so what is timed is the engine, the
per-row work around the model and the streamed selection, not a real encoder's matmuls.

Each side is one `python -m mdaq select` process (what a user runs) on a fresh output folder: it computes the feature
shards and streams the selection (``mdaq_das``: faiss k-means on a sample, then the two streamed passes). Memory is
sampled every 0.2 s over the whole process tree (the CLI, Ray's own processes and its actors): the report gives the
peak of the CLI process alone, the peak of the largest single process and the peak of the tree's sum. The sum counts
pages shared between processes (Ray's object store, the torch libraries) once per process, so it is an upper bound.
The ratio printed is peak RSS over the goal (< 1: met).

    .venv/bin/python benchmarks/bench_scale_select.py [--n 1000000] [--shards 32] [--sides 'ray 2 workers']
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from _timing import machine
from bench_scale_ray import build_qsm, midb_samples

REPO = Path(__file__).resolve().parents[1]
GOAL_RSS_GB = 4.0
SIDES = {
    "ray 2 workers": ["--engine", "ray", "--workers", "2", "--threads", "1"],
    "ray 1 worker": ["--engine", "ray", "--workers", "1", "--threads", "1"],
    "local 1 thread": ["--engine", "local", "--threads", "1"],
    "local 2 threads": ["--engine", "local", "--threads", "2"],
}


class TreeRSS:
    """Samples the resident memory of a process and all its descendants on a thread, keeping the peaks."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        self.root = psutil.Process(pid)
        self.every_s = every_s
        self.peak = {"cli_gb": 0.0, "largest_process_gb": 0.0, "tree_sum_gb": 0.0, "processes": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        sizes = []
        for proc in procs:
            try:
                sizes.append(proc.memory_info().rss / 2**30)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                sizes.append(0.0)
        if not sizes:
            return
        self.peak["cli_gb"] = max(self.peak["cli_gb"], sizes[0])
        self.peak["largest_process_gb"] = max(self.peak["largest_process_gb"], max(sizes))
        self.peak["tree_sum_gb"] = max(self.peak["tree_sum_gb"], sum(sizes))
        self.peak["processes"] = max(self.peak["processes"], len(sizes))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every_s)

    def __enter__(self) -> TreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def build_pool(work: Path, midb: Path, n: int, shards: int, lang: str) -> Path:
    """The one-language pool, cached per (language, n, shard count)."""
    from mdaq.shards import write_shards

    pool = work / f"pool-{lang}-{n}-{shards}"
    if not (pool / "_manifest.json").is_file():
        write_shards(midb_samples(midb, n, [lang]), pool, rows_per_shard=-(-n // shards))
    return pool


def run_side(name: str, pool: Path, qsm: Path, out: Path, method: str, budget: int) -> dict:
    """One `mdaq select` process: wall time, the command's own JSON report and the memory peaks."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "RAYON_"))}
    env.update(PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="true")
    if name.startswith("local 1"):
        env.update(OMP_NUM_THREADS="1", RAYON_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "mdaq", "select", "--pool", str(pool), "--method", method, "--budget", str(budget)]
    cmd += ["--qsm", str(qsm), "--encoder", str(qsm), "--out", str(out / "selection.jsonl")]
    cmd += ["--features-out", str(out / "features"), "--precision", "fp32", "--embed-max-len", "256", *SIDES[name]]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    with TreeRSS(proc.pid) as mem:
        stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{name} failed:\n{stderr[-3000:]}")
    lines = [ln for ln in stdout.strip().splitlines() if ln.startswith("{")]
    report = json.loads(lines[-1]) if lines else {}
    n_selected = sum(1 for _ in open(out / "selection.jsonl", encoding="utf-8"))
    memory = {k: round(v, 3) if isinstance(v, float) else v for k, v in mem.peak.items()}
    return {"wall_s": round(wall, 1), "n_selected": n_selected, "memory": memory, "report": report}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="pool rows")
    p.add_argument("--shards", type=int, default=32, help="pool shards (the unit of work: >= 4x the workers)")
    p.add_argument("--lang", default="de")
    p.add_argument("--method", default="mdaq_das")
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--sides", nargs="+", default=["ray 2 workers"], choices=list(SIDES))
    p.add_argument("--midb", default=str(REPO / "data" / "midb"))
    p.add_argument("--work", default="/tmp/mdaq-bench-scale-select")
    a = p.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    qsm = build_qsm(work)
    pool = build_pool(work, Path(a.midb), a.n, a.shards, a.lang)
    print(
        f"pool: {a.n} {a.lang} rows in {a.shards} shards ({time.perf_counter() - t0:.0f} s to build or find)",
        flush=True,
    )
    rows = {}
    for name in a.sides:
        res = run_side(name, pool, qsm, work / "out", a.method, a.budget)
        peak = max(res["memory"]["largest_process_gb"], res["memory"]["cli_gb"])
        res["rows_per_s"] = round(a.n / res["wall_s"], 1)
        res["largest_process_rss_over_goal"] = round(peak / GOAL_RSS_GB, 3)
        res["tree_sum_rss_over_goal"] = round(res["memory"]["tree_sum_gb"] / GOAL_RSS_GB, 3)
        print(
            f"  {name}: {res['wall_s']:.1f} s, {res['rows_per_s']} rows/s, peak RSS {peak:.2f} GB "
            f"(tree sum {res['memory']['tree_sum_gb']:.2f} GB; goal {GOAL_RSS_GB} GB)",
            flush=True,
        )
        rows[name] = res
    print(
        json.dumps(
            {
                "machine": machine(),
                "n": a.n,
                "shards": a.shards,
                "lang": a.lang,
                "method": a.method,
                "budget": a.budget,
                "goal_rss_gb": GOAL_RSS_GB,
                "sides": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
