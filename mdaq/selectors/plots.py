"""Figures that explain a selection: M-DaQ's Algorithm 1 on a 2-D toy pool, and any method's picks in a 2-D view of
a real pool's embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mdaq.selectors.algorithms import das_select, split_budget


def pca_2d(x: np.ndarray) -> np.ndarray:
    """The first two principal components of the rows of ``x`` (deterministic signs: largest loading positive)."""
    x = np.asarray(x, dtype=np.float64)
    centered = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    comps = vt[:2] * np.sign(vt[:2, np.argmax(np.abs(vt[:2]), axis=1)].diagonal())[:, None]
    return centered @ comps.T


def das_toy(
    n_clusters: int = 6, per_cluster: int = 30, budget: int = 14, ratio: tuple[float, float] = (6, 1), seed: int = 0
) -> dict[str, Any]:
    """A 2-D pool where quality and clusters disagree: cluster ``c`` has mean quality ``-c`` (cluster 0 best), so
    a top-k by quality fills up from the first clusters and only the diversity scan reaches the others.

    Returns the points, quality, cluster labels, DAS picks (Algorithm 1, :func:`das_select`) and the budget split.
    """
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, n_clusters, endpoint=False)
    centers = np.c_[np.cos(angles), np.sin(angles)] * 4
    labels = np.repeat(np.arange(n_clusters), per_cluster)
    points = centers[labels] + rng.normal(scale=0.7, size=(len(labels), 2))
    quality = -labels.astype(float) * 0.6 + rng.normal(scale=0.5, size=len(labels))
    n_quality, n_diversity = split_budget(budget, *ratio)
    picks = das_select(quality, labels, n_quality, n_diversity, fill=False)
    return {
        "points": points,
        "quality": quality,
        "labels": labels,
        "picks": picks,
        "n_quality": n_quality,
        "n_diversity": n_diversity,
    }


def plot_das(
    points: np.ndarray,
    quality: np.ndarray,
    labels: np.ndarray,
    picks: np.ndarray,
    n_quality: int,
    *,
    path: str | Path | None = None,
    title: str = "",
) -> Any:
    """Scatter of the pool (colour = cluster, marker size = quality rank), the first ``n_quality`` picks circled
    (quality part) and the rest starred (diversity part). Written to ``path`` when given; the figure is returned
    open, so a notebook shows it inline."""
    import matplotlib.pyplot as plt

    from mdaq.io import save_figure

    points, quality, labels, picks = map(np.asarray, (points, quality, labels, picks))
    rank = np.empty(len(quality))
    rank[np.argsort(-quality, kind="stable")] = np.arange(len(quality))
    size = 8 + 40 * (1 - rank / max(len(quality) - 1, 1))
    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    cmap = plt.get_cmap("tab10")
    ax.scatter(points[:, 0], points[:, 1], s=size, c=[cmap(int(c) % 10) for c in labels], alpha=0.45, linewidths=0)
    q, d = picks[:n_quality], picks[n_quality:]
    ax.scatter(*points[q].T, s=120, facecolors="none", edgecolors="black", linewidths=1.6, label=f"quality ({len(q)})")
    ax.scatter(*points[d].T, s=190, marker="*", c="crimson", edgecolors="black", label=f"diversity ({len(d)})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "DAS: top quality, then one best sample per uncovered cluster", fontsize=10)
    ax.legend(loc="upper right", fontsize=8, title="picks", title_fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, close=False)
    return fig


def plot_pool_selection(
    pool: Any,
    picks: np.ndarray,
    *,
    n_quality: int | None = None,
    n_clusters: int = 0,
    random_state: int = 0,
    path: str | Path | None = None,
    title: str = "",
) -> Any:
    """A method's picks on the first two principal components of ``pool.embeddings``, coloured by k-means clusters
    (``n_clusters``: k, 0 for CaR's floor(sqrt(n / 2)); pass ``selector.parts_["n_clusters"]`` and the selector's
    seed to draw the clusters ``mdaq_das`` used); marker size = QSM rank when the pool has scores. The first
    ``n_quality`` picks are drawn as the quality part (default: all of them)."""
    from mdaq.selectors.algorithms import cluster_labels, default_n_clusters

    if pool.embeddings is None:
        raise ValueError("plot_pool_selection needs pool embeddings (the `features` stage)")
    k = n_clusters or default_n_clusters(len(pool))
    labels = cluster_labels(pool.embeddings, k, random_state=random_state)
    quality = pool.quality if pool.quality is not None else np.zeros(len(pool))
    n_q = len(picks) if n_quality is None else n_quality
    return plot_das(pca_2d(pool.embeddings), quality, labels, picks, n_q, path=path, title=title)
