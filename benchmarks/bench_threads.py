"""Do OpenMP / MKL thread settings matter on this machine? Each setting runs in a fresh process (they must be set
before torch loads), on the same fp32 workloads: a 1024² GEMM and a forward + backward of a BERT-small-sized
transformer layer stack (6 layers, d = 384, 16 × 128 tokens, built in-process: no model folder needed). The
baseline is mdaq's own choice (no environment variable; `mdaq.hardware.set_threads` sets the physical cores);
each other row prints its ratio to it (> 1: faster than mdaq's choice). Settings run in alternating order, best
of ``--repeats`` per setting.

    .venv/bin/python benchmarks/bench_threads.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _timing import machine

SETTINGS = {
    "mdaq (set_threads)": {},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
    "OMP_NUM_THREADS=logical": {"OMP_NUM_THREADS": str(os.cpu_count() or 1)},
    "OMP_PROC_BIND=close OMP_PLACES=cores": {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"},
    "KMP/GOMP spin: OMP_WAIT_POLICY=ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
}

CHILD = r"""
import json, time, torch
from mdaq.hardware import set_threads
set_threads()
torch.manual_seed(0)
a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
layer = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(384, 6, 1536, dropout=0.0, batch_first=True), 6)
x = torch.randn(16, 128, 384)
def gemm():
    for _ in range(8):
        a @ b
def encoder():
    layer(x).sum().backward()
out = {"threads": torch.get_num_threads()}
for name, fn in (("gemm", gemm), ("encoder", encoder)):
    fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t0)
    out[name] = best
print(json.dumps(out))
"""


def run(env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "KMP_"))}
    env.update(env_extra)
    res = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    names = list(SETTINGS)
    results: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(args.repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            results[name].append(run(SETTINGS[name]))
    best = {
        n: {k: min(x[k] for x in rs) for k in ("gemm", "encoder")} | {"threads": rs[0]["threads"]}
        for n, rs in results.items()
    }
    base = best[names[0]]
    rows = {
        n: {
            "threads": b["threads"],
            "gemm_s": round(b["gemm"], 4),
            "encoder_s": round(b["encoder"], 4),
            "gemm_ratio_vs_mdaq": round(base["gemm"] / b["gemm"], 3),
            "encoder_ratio_vs_mdaq": round(base["encoder"] / b["encoder"], 3),
        }
        for n, b in best.items()
    }
    print(json.dumps({"machine": machine(), "settings": rows}, indent=2))


if __name__ == "__main__":
    main()
