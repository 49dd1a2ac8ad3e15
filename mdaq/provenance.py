"""Provenance stamped on every result file: the params sections a result depends on (hashed), the git commit,
the package version and the date."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

from mdaq.config import Params, section_sha

BASE = "base"  # the leaderboard row of the un-tuned base model (no selection, no training)


def run_sections(method: str) -> tuple[str, ...]:
    """The ``params.yaml`` sections a (method, lang, seed) result depends on (its replicate seed is in its path;
    adding a seed to ``seeds`` leaves the other runs current)."""
    if method == BASE:
        return ("seed", "base_model", "prepare", "evaluate")
    return ("seed", "base_model", "prepare", "select", f"selectors.{method}", "train", "evaluate")


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
        "params_sha": section_sha(params, *run_sections(method)),
        "git_sha": git_sha(),
        "mdaq_version": __version__,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
