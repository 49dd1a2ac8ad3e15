"""Resumable training checkpoints shared by the trainers: a run fingerprint, an atomic checkpoint folder, and the
optimizer / scheduler / RNG state saved as plain tensors (loaded with ``weights_only=True``: nothing unpickled)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from mdaq.io import check_replaceable, swap_in

log = logging.getLogger(__name__)
STATE = "state.json"  # written last: a folder holding it is a complete checkpoint, and mdaq's


class Interrupted(RuntimeError):
    """Raised by a trainer's ``stop_after`` to simulate a killed run (tests)."""


def run_fingerprint(*parts: Any) -> str:
    """Hash of everything that determines a training run (JSON of ``parts``); a checkpoint resumes only if it
    matches."""
    blob = json.dumps(list(parts), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def matching_checkpoint(ckpt: Path | None, fingerprint: str) -> dict[str, Any] | None:
    """The ``state.json`` of ``ckpt`` when it belongs to the run ``fingerprint``; a checkpoint of another run is
    deleted (resuming it would mix two runs) and ``None`` returned."""
    if ckpt is None or not (ckpt / STATE).is_file():
        return None
    state = json.loads((ckpt / STATE).read_text(encoding="utf-8"))
    if state.get("fingerprint") == fingerprint:
        return state
    log.warning("ignoring checkpoint %s of a different run", ckpt)
    shutil.rmtree(ckpt, ignore_errors=True)
    return None


def tmp_dir(ckpt: Path) -> Path:
    """The sibling folder a checkpoint is assembled in before :func:`commit` renames it into place."""
    return ckpt.with_name(ckpt.name + ".tmp")


def start(ckpt: Path) -> Path:
    """Create an empty :func:`tmp_dir` for a new checkpoint and return it."""
    tmp = tmp_dir(ckpt)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def commit(ckpt: Path, state: dict[str, Any]) -> None:
    """Write ``state.json`` last and swap the finished temp folder in: a crash leaves the old checkpoint whole. A
    folder at ``ckpt`` that is not a checkpoint (no ``state.json``) is never replaced (:func:`mdaq.io.atomic_dir`)."""
    tmp = tmp_dir(ckpt)
    (tmp / STATE).write_text(json.dumps(state), encoding="utf-8")
    check_replaceable(ckpt, (STATE,))
    swap_in(tmp, ckpt)


def save_optim_state(folder: Path, opt: Any, sched: Any, rank: int = 0) -> None:
    """Optimizer and scheduler state (rank 0 only) and this process's torch RNG state (one file per rank)."""
    import torch

    if rank == 0:
        torch.save(opt.state_dict(), folder / "optimizer.pt")
        torch.save(sched.state_dict(), folder / "scheduler.pt")
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    torch.save(rng, folder / f"rng_{rank}.pt")


def load_optim_state(folder: Path, opt: Any, sched: Any, rank: int = 0) -> None:
    """Restore :func:`save_optim_state` (``weights_only`` loads: tensors and plain types only)."""
    import torch

    opt.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    sched.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    rng_file = folder / f"rng_{rank}.pt"
    if not rng_file.is_file():  # resumed on more processes than saved: the extra ranks start their streams afresh
        log.warning("%s missing; rank %d keeps its seeded RNG stream", rng_file, rank)
        return
    rng = torch.load(rng_file, weights_only=True)
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    import random

    import torch

    random.seed(seed)
    import numpy as np

    np.random.seed(seed)  # noqa: NPY002  (third-party code may draw from the legacy global state)
    torch.manual_seed(seed)
