"""Figures of the judge stage: what the judge sees (the share of answers in the target language, which
``judge.lang_policy`` can turn into losses) and, when a judge ran, the win rates against the reference."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.io import read_json
from mdaq.names import path_under


def plot_answer_languages(
    generations_dir: str | Path, methods: Sequence[str], languages: Sequence[str], seed: int = 0, *, ax: Any = None
) -> Any:
    """Grouped bars: per language, per method, the share of its answers detected in the target language
    (``generation.json`` of each run folder ``<generations_dir>/<method>/<lang>/s<seed>/``; a missing run is left
    out). Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(max(5.0, 1.5 * len(languages) + 0.4 * len(methods)), 3.2))
    width = 0.8 / max(len(methods), 1)
    for k, method in enumerate(methods):
        shares = []
        for lang in languages:
            path = path_under(generations_dir, method, lang, f"s{seed}", "generation.json")
            shares.append(read_json(path)["share_target_lang"] if path.is_file() else np.nan)
        x = np.arange(len(languages)) + (k - (len(methods) - 1) / 2) * width
        ax.bar(x, shares, width, label=method)
    ax.set_xticks(np.arange(len(languages)), list(languages))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("answers in the target language")
    ax.set_title(f"Language of the judged answers (seed {seed})", fontsize=9)
    ax.legend(fontsize=7, ncol=min(4, len(methods)), loc="lower right")
    return ax


def plot_judge_win_rates(table: Any, *, ax: Any = None) -> Any:
    """Win rates (percent, with their intervals) of each method against the reference, per language and benchmark,
    from :func:`mdaq.judging.stage.winrate_table`. Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    labels = [f"{r.method} / {r.lang} / {r.benchmark}" for r in table.itertuples()]
    y = np.arange(len(labels))
    err = np.vstack([table["win_rate"] - table["ci_low"], table["ci_high"] - table["win_rate"]])
    ax.errorbar(table["win_rate"], y, xerr=err, fmt="o", capsize=2)
    ax.axvline(50, color="grey", lw=0.8, ls="--")
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel("win rate against the reference (%)")
    return ax
