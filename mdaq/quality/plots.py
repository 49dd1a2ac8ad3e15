"""Figures for the QSM evaluation (one function per figure, written atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCORER_COLORS = {
    "qsm": "#1b6ca8",
    "untrained": "#9bbad6",
    "length": "#e69f00",
    "surface": "#d55e00",
    "random": "#bbbbbb",
}


def plot_accuracy_by_lang(table: Any, path: str | Path) -> Any:
    """Grouped bars: pairwise accuracy per language and scorer, 95% bootstrap CIs; unseen languages marked ``*``.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of :func:`mdaq.quality.evaluate.by_lang_table`.
    path : path
        PNG to write.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from mdaq.io import save_figure

    langs = sorted(table["lang"].unique())
    scorers = list(dict.fromkeys(table["scorer"]))
    unseen = set(table.loc[table["split"] == "unseen", "lang"])
    width = 0.8 / len(scorers)
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(langs) + 2), 3.6))
    for k, scorer in enumerate(scorers):
        sub = table[table["scorer"] == scorer].set_index("lang").loc[langs]
        x = np.arange(len(langs)) + (k - (len(scorers) - 1) / 2) * width
        err = np.vstack([sub["pairwise_accuracy"] - sub["ci_low"], sub["ci_high"] - sub["pairwise_accuracy"]])
        ax.bar(x, sub["pairwise_accuracy"], width, yerr=err, capsize=2, label=scorer, color=SCORER_COLORS.get(scorer))
    ax.axhline(0.5, color="k", lw=0.6, ls=":")
    ax.set_xticks(np.arange(len(langs)), [f"{lang}*" if lang in unseen else lang for lang in langs])
    ax.set_ylim(0, 1)
    ax.set_ylabel("pairwise accuracy (revised > raw)")
    ax.set_title("QSM on held-out MIDB pairs (* = language not seen in training)")
    ax.legend(ncol=len(scorers), fontsize=8, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path, close=False)
    return fig


def plot_strata(summary: Any, path: str | Path) -> Any:
    """Accuracy per length stratum for each scorer, one panel per language group, 95% bootstrap intervals.

    Parameters
    ----------
    summary : pandas.DataFrame
        Rows of :func:`mdaq.quality.evaluate.summarize` (macro means per scorer, group and stratum).
    path : path
        PNG to write.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from mdaq.io import save_figure
    from mdaq.quality.evaluate import STRATA

    groups = [g for g in ("seen", "unseen") if g in set(summary["group"])] or ["all"]
    scorers = list(dict.fromkeys(summary["scorer"]))
    width = 0.8 / len(scorers)
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 3.8), sharey=True, squeeze=False)
    for ax, group in zip(axes[0], groups, strict=True):
        sub = summary[summary["group"] == group]
        for k, scorer in enumerate(scorers):
            rows = sub[sub["scorer"] == scorer].set_index("stratum").reindex(STRATA)
            x = np.arange(len(STRATA)) + (k - (len(scorers) - 1) / 2) * width
            acc = rows["pairwise_accuracy"].to_numpy(float)
            err = np.vstack([acc - rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float) - acc])
            ax.bar(x, acc, width, yerr=err, capsize=2, label=scorer, color=SCORER_COLORS.get(scorer))
        n = sub[sub["scorer"] == scorers[0]].set_index("stratum").reindex(STRATA)["n"]
        ax.set_xticks(np.arange(len(STRATA)), [f"{s}\nn={int(c) if c == c else 0}" for s, c in n.items()], fontsize=8)
        ax.axhline(0.5, color="k", lw=0.6, ls=":")
        ax.set_ylim(0, 1)
        ax.set_title(f"{group} languages (macro mean)")
    axes[0][0].set_ylabel("pairwise accuracy (revised > raw)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=len(scorers), fontsize=8, loc="lower center")
    fig.suptitle("QSM by length stratum: ratio = len(revised) / len(raw); matched = 0.8-1.25", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save_figure(fig, path, close=False)
    return fig
