"""Figures for the feature stages: does a per-sample score separate the pool's expert-revised samples from the raw
machine translations? (The label is known for MIDB pools and never shown to a selector.)"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def plot_score_by_label(
    scores: Sequence[float], is_revised: Sequence[bool], *, xlabel: str, path: str | Path | None = None
) -> Any:
    """Overlaid histograms of ``scores`` for revised and raw samples, each group's mean marked, and the share of
    (revised, raw) pairs the score orders correctly (AUC, ties ½) in the title. Returns the open figure."""
    import matplotlib.pyplot as plt

    from mdaq.io import save_figure

    s, y = np.asarray(scores, dtype=float), np.asarray(is_revised, dtype=bool)
    ok = ~np.isnan(s)
    s, y = s[ok], y[ok]
    rev, raw = s[y], s[~y]
    auc = float("nan")
    if len(rev) and len(raw):
        diff = rev[:, None] - raw[None, :]
        auc = float(((diff > 0) + 0.5 * (diff == 0)).mean())
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    bins = np.histogram_bin_edges(s, bins=20) if len(s) else 10
    for group, colour, name in ((rev, "#1b6ca8", "expert-revised"), (raw, "#e69f00", "raw MT")):
        ax.hist(group, bins=bins, alpha=0.55, color=colour, label=f"{name} (n={len(group)})")
        if len(group):
            ax.axvline(group.mean(), color=colour, lw=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pool samples")
    ax.set_title(f"P(revised scores higher than raw) = {auc:.2f}  (0.5 = no separation)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, close=False)
    return fig
