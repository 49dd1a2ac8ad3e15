"""Leaderboard figures: a metric per language for every method (with 95% intervals), and the judge's win rates
against the reference method per language (the paper's Fig. 1b) when a judge ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mdaq.io import save_figure


def plot_metric_by_language(
    long_df: Any, metric: str, path: str | Path, *, title: str = "", reference_line: float | None = None
) -> Path:
    """Grouped bars: one group per language (and ``all``), one bar per method, 95% intervals as error bars."""
    import matplotlib.pyplot as plt

    sub = long_df[long_df["metric"] == metric]
    langs = [*sorted(set(sub["language"]) - {"all"}), "all"]
    methods = list(sub[sub["language"] == "all"].sort_values("value", ascending=False)["method"])
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(langs) + 0.3 * len(methods)), 3.6))
    cmap = plt.get_cmap("tab20")
    for k, m in enumerate(methods):
        rows = sub[sub["method"] == m].set_index("language").reindex(langs)
        x = np.arange(len(langs)) + (k - (len(methods) - 1) / 2) * width
        err = np.vstack([rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]])
        err = np.where(np.isfinite(err), err, 0.0)
        ax.bar(x, rows["value"], width, yerr=err, capsize=1.5, label=m, color=cmap(k % 20), error_kw={"lw": 0.6})
    if reference_line is not None:
        ax.axhline(reference_line, color="black", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(langs)), langs)
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    lo = np.nanmin(sub["ci_low"].fillna(sub["value"])) if len(sub) else 0.0
    ax.set_ylim(bottom=max(0.0, lo - 0.05 * abs(lo)) if metric != "ref_nll" else None)
    ax.legend(ncol=min(6, len(methods)), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    return save_figure(fig, path)


def plot_win_rates(long_df: Any, path: str | Path) -> Path:
    """Per-language AlpacaEval and MT-Bench R1 win rates against the reference method, or a note that no judge ran."""
    import matplotlib.pyplot as plt

    judged = long_df[long_df["metric"].str.startswith("win_rate")]
    if judged.empty:
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            "No LLM judge configured (judge.backend: none): no win rates.\n"
            "The leaderboard shows judge-free metrics only.",
            ha="center",
            va="center",
        )
        return save_figure(fig, path)
    benches = [b for b in ("win_rate_alpaca_eval", "win_rate_mt_bench_r1") if b in set(judged["metric"])]
    fig, axes = plt.subplots(1, len(benches), figsize=(6.5 * len(benches), 3.6), squeeze=False)
    for ax, bench in zip(axes[0], benches, strict=True):
        sub = judged[judged["metric"] == bench]
        langs = [*sorted(set(sub["language"]) - {"all"}), "all"]
        methods = sorted(set(sub["method"]))
        width = 0.8 / max(len(methods), 1)
        for k, m in enumerate(methods):
            rows = sub[sub["method"] == m].set_index("language").reindex(langs)
            x = np.arange(len(langs)) + (k - (len(methods) - 1) / 2) * width
            err = np.vstack([rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]])
            ax.bar(
                x,
                rows["value"],
                width,
                yerr=np.where(np.isfinite(err), err, 0.0),
                capsize=1.5,
                label=m,
                error_kw={"lw": 0.6},
            )
        ax.axhline(50, color="black", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(langs)), langs)
        ax.set_ylim(0, 100)
        ax.set_ylabel("win rate vs reference (%)")
        ax.set_title(bench.removeprefix("win_rate_"))
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        fontsize=7,
        ncol=min(8, len(labels)),
        loc="lower center",
        bbox_to_anchor=(0.5, -0.08),
        frameon=False,
    )
    return save_figure(fig, path)


def plot_paired_differences(comparisons: Any, path: str | Path, *, alpha: float = 0.05) -> Path:
    """Paired differences in expert-preference accuracy with their 95% bootstrap intervals: one panel per reference
    method of ``compare.against``, one row per compared method, one marker per language and for all pairs;
    filled markers where the Holm-adjusted p is below ``alpha``. ``comparisons`` is the long table of
    :func:`mdaq.reporting.leaderboard.paired_report`."""
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(comparisons)
    if df.empty:
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "No paired comparisons (compare.against names no method of the board).", ha="center")
        return save_figure(fig, path)
    against = list(dict.fromkeys(df["against"]))
    scopes = [*sorted(set(df["scope"]) - {"all"}), "all"]
    fig, axes = plt.subplots(1, len(against), figsize=(4.6 * len(against), 0.45 * df["method"].nunique() + 1.6))
    axes = np.atleast_1d(axes)
    cmap = plt.get_cmap("tab10")
    for ax, ref in zip(axes, against, strict=True):
        sub = df[df["against"] == ref]
        methods = sorted(set(sub["method"]))
        for k, scope in enumerate(scopes):
            rows = sub[sub["scope"] == scope].set_index("method").reindex(methods)
            y = np.arange(len(methods)) + (k - (len(scopes) - 1) / 2) * 0.8 / len(scopes)
            err = np.vstack([rows["d_acc"] - rows["d_acc_lo"], rows["d_acc_hi"] - rows["d_acc"]])
            color = "black" if scope == "all" else cmap(k % 10)
            ax.errorbar(rows["d_acc"], y, xerr=err, fmt="none", ecolor=color, lw=1, capsize=2)
            sig = (rows["p_acc_holm"] < alpha).to_numpy()
            ax.scatter(rows["d_acc"][sig], y[sig], color=color, s=18, zorder=3, label=scope)
            ax.scatter(rows["d_acc"][~sig], y[~sig], facecolor="white", edgecolor=color, s=18, zorder=3)
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        ax.set_yticks(np.arange(len(methods)), methods)
        ax.set_xlabel(f"accuracy difference vs {ref} (paired, 95% CI)")
        ax.set_title(f"against {ref}", fontsize=9)
    axes[0].legend(fontsize=7, title="filled: Holm p < α", title_fontsize=7, loc="best")
    return save_figure(fig, path)
