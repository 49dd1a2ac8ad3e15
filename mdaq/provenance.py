"""Provenance stamped on every result file: the params sections a result depends on (hashed), the git commit,
the package version and the date."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

from mdaq.config import Params, explicit_selector_params, section_sha
from mdaq.names import submission_name

BASE = "base"  # the leaderboard row of the un-tuned base model (no selection, no training)
# settings inside a run's sections that no run reads: the QSM evaluation's own cap on held-out pairs. They are left
# out of a run's params hash, so changing (or adding) them does not mark every run of the leaderboard stale.
NOT_RUN_INPUTS: dict[str, tuple[str, ...]] = {"prepare": ("qsm_eval_max",)}


def run_sections(method: str) -> tuple[str, ...]:
    """The ``params.yaml`` sections a (method, lang, seed) result depends on (its replicate seed is in its path;
    adding a seed to ``seeds`` leaves the other runs current)."""
    if method == BASE:
        return ("seed", "base_model", "prepare", "evaluate")
    if submission_name(method) is not None:  # its selection is a submitted file, not a selector's parameters
        return ("seed", "base_model", "prepare", "select", "train", "evaluate")
    return ("seed", "base_model", "prepare", "select", f"selectors.{method}", "train", "evaluate")


def run_sha(params: Params, method: str) -> str:
    """:func:`~mdaq.config.section_sha` over :func:`run_sections`, with the settings of :data:`NOT_RUN_INPUTS`, and
    those of :data:`mdaq.config.IMPLICIT_SELECTOR_DEFAULTS` at their implicit value, set aside (the hash equals the
    one computed before those settings existed)."""
    trimmed: dict[str, Any] = {  # a plain dict in place of the section: section_sha hashes its dataclasses.asdict copy
        section: {k: v for k, v in dataclasses.asdict(getattr(params, section)).items() if k not in names}
        for section, names in NOT_RUN_INPUTS.items()
    }
    trimmed["selectors"] = {name: explicit_selector_params(name, entry) for name, entry in params.selectors.items()}
    return section_sha(dataclasses.replace(params, **trimmed), *run_sections(method))


def git_sha(root: str | Path = ".") -> str:
    """``HEAD`` commit (short), ``-dirty`` if tracked code/pipeline files differ from it; ``unknown`` without git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "mdaq",
                "notebooks",
                "dvc.yaml",
                "params.yaml",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def provenance(params: Params, method: str) -> dict[str, Any]:
    """Fields every metrics file carries: params hash, git sha, package version, date."""
    from mdaq import __version__

    return {
        "params_sha": run_sha(params, method),
        "git_sha": git_sha(),
        "mdaq_version": __version__,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
