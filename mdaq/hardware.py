"""What the machine can do fast: ``precision: auto`` and torch's thread count, decided from the hardware.

``auto`` resolves, per device and at run time, to ``bf16`` only where bfloat16 matmuls run in hardware:

- a CUDA GPU of compute capability 8.0 or newer (Ampere, Hopper, ...);
- an x86 CPU whose flags list ``amx_bf16`` (Intel Sapphire Rapids and later) or ``avx512_bf16`` (Cooper Lake,
  AMD Zen 4 and later).

Everywhere else (AVX2-only x86 such as older Intel and AMD EPYC before Zen 4, CPUs whose flags cannot be read,
GPUs before Ampere) it resolves to ``fp32``: torch then emulates bf16, ~270x slower than fp32 on an AVX2 EPYC
(``benchmarks/bench_precision.py``). The rule reads flags, not a timing, so it is deterministic per machine; a
wrong "no" costs at most the 2-3x that fast bf16 would have saved, a wrong "yes" would cost two orders of
magnitude, so where in doubt it says no. ``benchmarks/bench_precision.py`` checks, on the machine it runs on, that
the choice is the faster one.

Threads: torch's intra-op pool is set to the physical cores this process may use (CPU affinity, then a cgroup CPU
quota), which :func:`configure_torch` logs once per process together with the resolved precision.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")  # what a forward pass runs in (mdaq.models.lm.autocast)
PRECISION_CHOICES = ("auto", *PRECISIONS)  # what params.yaml may say
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # x86 flags (/proc/cpuinfo) that mean bf16 matmuls in hardware
MIN_BF16_CUDA_CAPABILITY = (8, 0)  # Ampere: bf16 tensor cores


@dataclass(frozen=True)
class CPUInfo:
    """The CPU as the OS reports it (``/proc/cpuinfo`` on Linux)."""

    model: str
    flags: frozenset[str]


@functools.lru_cache(maxsize=1)
def cpu_info() -> CPUInfo:
    """Model name and feature flags of the first CPU (empty flags where ``/proc/cpuinfo`` is unreadable)."""
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return CPUInfo(model, flags)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model in ("", platform.machine()):
            model = value.strip()
        elif key in ("flags", "Features") and not flags:  # x86 / arm64
            flags = frozenset(value.split())
        if line.strip() == "":  # end of the first CPU's block
            break
    return CPUInfo(model, flags)


def cpu_fast_bf16(info: CPUInfo | None = None) -> tuple[bool, str]:
    """Whether this CPU multiplies bf16 matrices in hardware, and why (the flags that decided)."""
    info = info or cpu_info()
    found = [f for f in BF16_CPU_FLAGS if f in info.flags]
    if found:
        return True, f"{info.model}: {', '.join(found)}"
    return False, f"{info.model}: no {' / '.join(BF16_CPU_FLAGS)} (bf16 would be emulated)"


def cuda_fast_bf16(index: int = 0) -> tuple[bool, str]:
    """Whether CUDA device ``index`` has bf16 tensor cores (compute capability >= 8.0), and its name."""
    import torch

    name = torch.cuda.get_device_name(index)
    capability = tuple(torch.cuda.get_device_capability(index))
    ok = capability >= MIN_BF16_CUDA_CAPABILITY
    return ok, f"{name} (compute capability {capability[0]}.{capability[1]})"


def fast_bf16(device: str) -> tuple[bool, str]:
    """Whether ``device`` ("cpu", "cuda", "cuda:1", ...) runs bf16 matmuls fast, and the reason in words."""
    kind, _, index = str(device).partition(":")
    if kind == "cuda":
        return cuda_fast_bf16(int(index or 0))
    if kind == "cpu":
        return cpu_fast_bf16()
    return False, f"{device}: no bf16 rule for this device type"


def resolve_precision(precision: str, device: str, *, decoding: bool = False) -> str:
    """``"auto"`` -> ``"bf16"`` where :func:`fast_bf16` says so for ``device``, else ``"fp32"``; explicit choices
    pass through.

    ``decoding=True`` is generation's own rule: token-by-token decoding runs small, overhead-bound matmuls, where
    bf16 is slower than fp32 on every CPU measured (AMX included, ``benchmarks/bench_lm.py``), so ``auto`` is
    ``fp32`` on a CPU and follows :func:`fast_bf16` on a GPU.

    Raises
    ------
    ValueError
        ``precision`` is not one of :data:`PRECISION_CHOICES`.
    """
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {precision!r}")
    if precision != "auto":
        return precision
    if decoding and not str(device).startswith("cuda"):
        return "fp32"
    return "bf16" if fast_bf16(device)[0] else "fp32"


def _cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs granted by a cgroup quota (v2 ``cpu.max`` or v1 ``cfs_quota_us``), None when unlimited/unknown."""
    for quota_file, period_file in (
        (root / "cpu.max", None),
        (root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"),
    ):
        try:
            text = quota_file.read_text().split()
            if period_file is None:
                quota, period = text[0], text[1]
            else:
                quota, period = text[0], period_file.read_text().strip()
        except (OSError, IndexError):
            continue
        if quota in ("max", "-1"):
            return None
        try:
            return max(float(quota) / float(period), 0.0) or None
        except ValueError:
            continue
    return None


def _physical_cores(cpus: set[int]) -> int:
    """Distinct (package, core) pairs among ``cpus`` (sysfs topology); ``len(cpus)`` where it is unreadable."""
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(
                (
                    topo.joinpath("physical_package_id").read_text().strip(),
                    topo.joinpath("core_id").read_text().strip(),
                )
            )
        except OSError:
            return len(cpus)
    return len(cores) or len(cpus)


@dataclass(frozen=True)
class ThreadPlan:
    """How many intra-op threads torch should use, and the numbers that decided it."""

    threads: int
    logical_cpus: int  # CPUs in this process's affinity mask
    physical_cores: int  # distinct cores among them
    cgroup_cpus: float | None  # CPU quota of the container, None = none

    def describe(self) -> str:
        """One line for a stage log."""
        quota = "no cgroup quota" if self.cgroup_cpus is None else f"cgroup quota {self.cgroup_cpus:g} CPUs"
        return (
            f"{self.threads} torch threads ({self.physical_cores} physical cores of {self.logical_cpus} "
            f"CPUs in the affinity mask, {quota})"
        )


def thread_plan() -> ThreadPlan:
    """Physical cores available to this process: affinity mask, then capped by a cgroup CPU quota."""
    try:
        cpus = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = set(range(os.cpu_count() or 1))
    physical = _physical_cores(cpus)
    quota = _cgroup_cpu_limit()
    threads = physical if quota is None else min(physical, max(1, math.floor(quota)))
    return ThreadPlan(max(1, threads), len(cpus), physical, quota)


def set_threads(plan: ThreadPlan | None = None) -> ThreadPlan:
    """Set torch's intra-op threads to ``plan.threads`` (default: :func:`thread_plan`), unless the user pinned them
    with ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``, which are respected (and reported)."""
    import torch

    plan = plan or thread_plan()
    pinned = os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS")
    if pinned:
        return ThreadPlan(torch.get_num_threads(), plan.logical_cpus, plan.physical_cores, plan.cgroup_cpus)
    if torch.get_num_threads() != plan.threads:
        torch.set_num_threads(plan.threads)
    return plan


def hardware_record(device: str, requested: str, resolved: str) -> dict[str, Any]:
    """What a stage record stores so that two results differing in the last digits say why."""
    import torch

    ok, reason = fast_bf16(device)
    rec = {
        "precision_requested": requested,
        "precision": resolved,
        "device": str(device),
        "fast_bf16": ok,
        "bf16_reason": reason,
        "cpu_model": cpu_info().model,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }
    if str(device).startswith("cuda"):
        rec["gpu"] = torch.cuda.get_device_name(int(str(device).partition(":")[2] or 0))
    return rec


def configure_torch(precision: str, device: str, *, stage: str = "", decoding: bool = False) -> dict[str, Any]:
    """Resolve ``precision`` for ``device`` (:func:`resolve_precision`), set the thread count (:func:`set_threads`),
    say both in one line on stderr (the stage log), and return the record (:func:`hardware_record`) that the stage
    stores with its output."""
    plan = set_threads()
    resolved = resolve_precision(precision, device, decoding=decoding)
    rec = hardware_record(device, precision, resolved)
    _announce(
        f"{stage or 'mdaq'}: precision {precision} -> {resolved} on {device} [{rec['bf16_reason']}]; {plan.describe()}"
    )
    return rec


@functools.lru_cache(maxsize=64)
def _announce(line: str) -> None:
    """Log ``line`` and print it to stderr once per process (papermill keeps stderr in the executed notebook)."""
    import sys

    log.info(line)
    print(line, file=sys.stderr, flush=True)
