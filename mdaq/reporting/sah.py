"""SAH curves for the leaderboard (the paper's Fig. 4): points from the ``sah`` stage and the main grid, and their
figure. The study's runs themselves are :func:`mdaq.pipeline.sah.run_sah_point`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mdaq.io import read_json
from mdaq.names import path_under

METRICS = ("expert_pref_acc", "expert_pref_acc_se", "ref_nll", "n")


def sah_table(
    runs_dir: str | Path,
    sah_dir: str | Path,
    methods: Sequence[str],
    languages: Sequence[str],
    full_method: str = "full",
    *,
    sah_methods: Sequence[str] = (),
    sizes: Sequence[int] = (),
    seed: int = 0,
) -> Any:
    """Points of the SAH curves: one row per (method, lang, size) with the metrics of :data:`METRICS`.

    Sources: ``sah_dir/<method>/<size>/<lang>/metrics.json`` (the ``sah`` stage) for the methods in
    ``sah_methods`` and the ``sizes`` of the current params only (a file left by an earlier profile is never
    read), the main grid's ``runs_dir/<method>/<lang>/s<seed>/metrics.json`` (size ``n_selected``; ``seed``: the
    one the ``sah`` stage trains with, the first of ``seeds``) and ``full_method``'s run, the whole pool, which ends
    every method's curve. ``optimizer_steps`` stands beside every point: epochs are equal, so a bigger set also
    trains for more steps, and the curve mixes both.
    """
    import pandas as pd

    rows = []
    for lang in languages:
        full = path_under(runs_dir, full_method, lang, f"s{seed}", "metrics.json")
        full_m = _with_steps(full) if full.is_file() else None
        for method in methods:
            points = []
            main = path_under(runs_dir, method, lang, f"s{seed}", "metrics.json")
            if main.is_file():
                m = _with_steps(main)
                points.append((int(m["n_selected"]), m, "main grid"))
            for size in sizes if method in sah_methods else ():
                f = path_under(sah_dir, method, str(size), lang, "metrics.json")
                if f.is_file():
                    m = read_json(f)
                    points.append((int(m["size"]), m, "sah stage"))
            if full_m is not None:
                points.append((int(full_m["n_selected"]), full_m, f"{full_method} (whole pool)"))
            for size, m, source in points:
                rows.append(
                    {
                        "method": method,
                        "lang": lang,
                        "size": size,
                        "source": source,
                        **{k: m.get(k, math.nan) for k in METRICS},
                        "optimizer_steps": m.get("optimizer_steps", math.nan),
                    }
                )
    df = pd.DataFrame(rows, columns=["method", "lang", "size", "source", *METRICS, "optimizer_steps"])
    df = df.drop_duplicates(["method", "lang", "size"]).sort_values(["method", "lang", "size"])
    return df.reset_index(drop=True)


def _with_steps(metrics_path: Path) -> dict[str, Any]:
    """A main-grid run's metrics with ``optimizer_steps`` from the ``train.json`` beside them (when present)."""
    m = dict(read_json(metrics_path))
    train = metrics_path.with_name("train.json")
    if "optimizer_steps" not in m and train.is_file():
        m["optimizer_steps"] = read_json(train).get("n_steps", math.nan)
    return m


def plot_sah(table: Any, path: str | Path, metrics: Sequence[str] = ("expert_pref_acc", "ref_nll")) -> Path:
    """One column per language, one row per metric (accuracy with ±1.96 SE), against training-set size (log scale),
    one line per method."""
    import matplotlib.pyplot as plt

    from mdaq.io import save_figure

    langs = sorted(set(table["lang"])) or ["-"]
    fig, axes = plt.subplots(len(metrics), len(langs), figsize=(3.6 * len(langs), 2.8 * len(metrics)), squeeze=False)
    for r, metric in enumerate(metrics):
        for ax, lang in zip(axes[r], langs, strict=True):
            for method in sorted(set(table["method"])):
                sub = table[(table["lang"] == lang) & (table["method"] == method)].sort_values("size")
                err = 1.959964 * sub["expert_pref_acc_se"] if metric == "expert_pref_acc" else None
                ax.errorbar(sub["size"], sub[metric], yerr=err, marker="o", capsize=2, label=method)
                if r == 0:  # optimizer steps beside every point: more data also means more steps
                    for x, y, st in zip(sub["size"], sub[metric], sub["optimizer_steps"], strict=True):
                        if st == st:
                            ax.annotate(f"{int(st)} st", (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
            sizes = sorted(set(table.loc[table["lang"] == lang, "size"]))
            if sizes:
                ax.set_xscale("log")
                ax.set_xticks(sizes, [str(s) for s in sizes])
                ax.minorticks_off()
            if metric == "expert_pref_acc":
                ax.axhline(0.5, color="grey", lw=0.6, ls=":")
            ax.set_title(lang if r == 0 else "")
            ax.set_xlabel("training samples" if r == len(metrics) - 1 else "")
        axes[r][0].set_ylabel(f"{metric} ({'lower' if metric == 'ref_nll' else 'higher'} is better)", fontsize=8)
    if len(table):
        axes[0][0].legend(fontsize=7)
    else:
        axes[0][0].text(0.5, 0.5, "no SAH points", ha="center", transform=axes[0][0].transAxes)
    fig.suptitle("Quality against quantity: curated vs unfiltered subsets (last point: the whole pool)", fontsize=9)
    return save_figure(fig, path)
