"""Figures for the QSM evaluation (one function per figure, written atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCORER_COLORS = {"qsm": "#1b6ca8", "untrained": "#9bbad6", "length": "#e69f00", "random": "#bbbbbb"}


def plot_accuracy_by_lang(table: Any, path: str | Path) -> Any:
    """Grouped bars: pairwise accuracy per language and scorer, 95% bootstrap CIs; unseen languages marked ``*``.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of :func:`mdaq.quality.evaluate.evaluate_scorers`.
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
