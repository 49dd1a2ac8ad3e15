"""Figures of one evaluated run: the per-item preference margins behind ``expert_pref_acc``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_margins(items: Any, *, title: str = "", ax: Any = None) -> Any:
    """Histogram of the per-pair margins (mean log-prob of the revised minus the raw response) of a run's
    ``items.csv`` (a path or the DataFrame); pairs right of 0 count as correct. Returns the axes."""
    import matplotlib.pyplot as plt

    from mdaq.io import read_items

    df = read_items(items) if isinstance(items, str | Path) else items
    margins = df["margin"].to_numpy(dtype=float)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    lim = float(np.nanmax(np.abs(margins))) if len(margins) else 1.0
    bins = np.linspace(-lim, lim, 25) if lim > 0 else 10
    ax.hist(margins, bins=bins, color="#4C72B0", alpha=0.8)
    ax.axvline(0, color="k", lw=1)
    acc = float(df["correct"].mean()) if len(df) else float("nan")
    ax.set_xlabel("margin: mean log-prob(revised) - mean log-prob(raw)")
    ax.set_ylabel("held-out pairs")
    ax.set_title(f"{title}  (accuracy {acc:.3f}, n={len(df)})".strip())
    return ax
