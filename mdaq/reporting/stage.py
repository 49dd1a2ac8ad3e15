"""The ``leaderboard`` stage as one library call: table, figures, HTML page, SAH curves and the published notebooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mdaq.config import Params

PAPER_NOTE = "Every number is this pipeline's, on the profile above; none is the paper's. "


def run_leaderboard_stage(
    params: Params,
    *,
    runs_dir: str | Path,
    intrinsic_path: str | Path,
    judge_dir: str | Path,
    sah_dir: str | Path,
    out_dir: str | Path,
    figures_dir: str | Path,
    notebooks_dir: str | Path | None = None,
    published_dir: str | Path | None = None,
    pool_manifest: str | Path | None = None,
    submissions_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Build the leaderboard from every run's ``metrics.json``, the intrinsic metrics and the judge's win rates;
    the profile's submissions (their records in ``submissions_dir``) join the methods, and every row must have been
    trained on the frozen pool of ``pool_manifest`` (:func:`mdaq.reporting.leaderboard.build_leaderboard`);
    write ``leaderboard.{csv,md,html}``, ``leaderboard_wide.csv``, ``metrics.json``, ``sah_curves.csv`` to
    ``out_dir`` and the figures to ``figures_dir``; publish one executed notebook per stage from ``notebooks_dir``
    to ``published_dir`` (:func:`mdaq.reporting.notebooks.publish_notebooks`) when both are given.

    Returns ``{"table": wide DataFrame, "long": long DataFrame, "figures": [png paths], "published": [paths]}``.
    """
    import pandas as pd

    from mdaq.io import read_json
    from mdaq.provenance import git_sha
    from mdaq.reporting.html import render_html
    from mdaq.reporting.leaderboard import build_leaderboard, to_long, to_markdown, write_leaderboard
    from mdaq.reporting.notebooks import publish_notebooks
    from mdaq.reporting.plots import plot_metric_by_language, plot_paired_differences, plot_win_rates
    from mdaq.reporting.sah import plot_sah, sah_table
    from mdaq.reporting.tiers import builtin_links, read_submission_records

    figures_dir, out_dir = Path(figures_dir), Path(out_dir)
    intrinsic = pd.read_csv(intrinsic_path)
    pool = read_json(pool_manifest) if pool_manifest is not None else None
    submissions = read_submission_records(submissions_dir, params) if submissions_dir is not None else {}
    df = build_leaderboard(
        runs_dir,
        params,
        params.methods,
        params.languages,
        intrinsic=intrinsic,
        judge_dir=judge_dir,
        pool=pool,
        submissions=submissions,
        links=builtin_links(params.methods),
    )
    report = df.attrs["report"]
    long = to_long(df)
    figures = [
        plot_metric_by_language(
            long,
            "expert_pref_acc",
            figures_dir / "leaderboard_by_language.png",
            title="Expert-preference accuracy on held-out MIDB pairs (95% intervals)",
            reference_line=0.5,
        ),
        plot_win_rates(long, figures_dir / "win_rates.png"),
        plot_paired_differences(report["comparisons"], figures_dir / "paired_differences.png", alpha=report["alpha"]),
    ]
    # the SAH study's curves, and the curated M-DaQ subset of the main grid as a point beside them (paper Fig. 4)
    curves = list(dict.fromkeys([*params.sah.methods, *(m for m in ["mdaq_das"] if m in params.methods)]))
    sah = sah_table(
        runs_dir,
        sah_dir,
        curves,
        params.languages,
        "full",
        sah_methods=params.sah.methods,
        sizes=params.sah.sizes,
        seed=params.seeds[0],
    )
    sah.to_csv(out_dir / "sah_curves.csv", index=False, float_format="%.6g")
    figures.append(plot_sah(sah, figures_dir / "sah_curves.png"))
    meta = {
        "profile": params.profile,
        "base model": params.base_model,
        "judge": params.judge.model if params.judge.backend != "none" else "none (judge-free metrics only)",
        "git": git_sha(),
        "date": df["date"].max(),
        **({"pool": pool["pool_hash"][:12]} if pool is not None else {}),
    }
    html = render_html(
        long,
        title="mdaq leaderboard: multilingual instruction-data selection",
        meta=meta,
        note=PAPER_NOTE + to_markdown(df).split("\n\n", 1)[-1],
        figures=[*figures, figures_dir / "selection_composition.png"],
        wide_df=df,
    )
    write_leaderboard(df, out_dir, html=html)
    published = []
    if notebooks_dir is not None and published_dir is not None:
        published = publish_notebooks(
            notebooks_dir,
            published_dir,
            skip=["50_leaderboard"],
            stage_notebooks=sorted(Path(notebooks_dir).parent.glob("[0-9]*.ipynb")),
        )
    return {"table": df, "long": long, "figures": [Path(f) for f in figures], "published": published}
