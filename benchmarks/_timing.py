"""Fair timing for the benchmarks: every side warmed up, sides run in alternating order, best of several repeats.

``compare({"a": fa, "b": fb}, repeats=3)`` runs one untimed warm-up call of each side, then ``repeats`` rounds in
which the sides run in alternating order (a b, b a, a b, ...), and returns each side's best time and all its times.
A side whose warm-up took more than ``slow_factor`` times the fastest side's is not repeated (its one run is far
outside any noise, and repeating a 100x-slower emulated path would take minutes): its warm-up time is reported.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(sides: dict[str, Callable[[], Any]], repeats: int = 3, slow_factor: float = 10.0) -> dict[str, dict]:
    """Best and median seconds per side (see the module docstring)."""
    warm = {name: timed(fn) for name, fn in sides.items()}
    fastest = min(warm.values())
    times: dict[str, list[float]] = {name: [] for name in sides}
    slow = {name for name, t in warm.items() if t > slow_factor * max(fastest, 1e-9)}
    names = [n for n in sides if n not in slow]
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(timed(sides[name]))
    out = {}
    for name in sides:
        ts = times[name] or [warm[name]]
        out[name] = {
            "best_s": min(ts),
            "median_s": statistics.median(ts),
            "runs": len(ts),
            "note": f"warm-up only: > {slow_factor:g}x the fastest side" if name in slow else "",
        }
    return out


def gemm_gflops(dtype: str, size: int = 1024, seconds: float = 0.5) -> float:
    """Measured square-GEMM rate (GFLOP/s) in ``dtype`` ("fp32" or "bf16"), best of repeated calls for about
    ``seconds`` (at least 2 calls after a warm-up)."""
    import torch

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dt)
    b = torch.randn(size, size, generator=gen).to(dt)
    a @ b
    best, t_end, n = float("inf"), time.perf_counter() + seconds, 0
    while n < 2 or time.perf_counter() < t_end:
        best = min(best, timed(lambda: a @ b))
        n += 1
    return 2 * size**3 / best / 1e9


def machine() -> dict[str, Any]:
    """Which CPU (and how many torch threads) produced the numbers."""
    import torch

    from mdaq.hardware import cpu_fast_bf16, cpu_info

    fast, why = cpu_fast_bf16()
    return {
        "cpu": cpu_info().model,
        "fast_bf16": fast,
        "probe": why,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def require(path: str | Path, build: str) -> Path:
    """``path`` if it exists, else exit with the command that builds it."""
    path = Path(path)
    if not path.exists():
        raise SystemExit(f"{path} not found: build it with `{build}`")
    return path
