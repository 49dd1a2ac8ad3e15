"""Human pairwise evaluation: read verdict CSVs, win rates with bootstrap CIs (Table 1), annotator and judge agreement.

The CSV format and every aggregation choice are documented in ``docs/human-eval.md``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping, Sequence
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mdaq.errors import DataError
from mdaq.io import read_text
from mdaq.judging.winrate import bootstrap_ci, combine_orders, json_safe, read_judgments

COLUMNS = ("lang", "benchmark", "item", "annotator", "verdict", "model", "reference")
VERDICTS = ("model", "reference", "tie")
# An annotator's vote as the model's score against the reference: win 1, tie ½, loss 0.
SCORE = {"model": 1.0, "tie": 0.5, "reference": 0.0}
ITEM = ["lang", "benchmark", "item", "model", "reference"]
PAIR = ["model", "reference", "benchmark", "lang"]


def _uncommented(f: Any) -> Iterator[str]:
    """Lines of ``f`` with comment lines blanked (not dropped), so the csv reader's line numbers stay true."""
    for line in f:
        yield "\n" if line.startswith("#") else line


def _check_row(rec: dict[str, str], path: Path, line: str) -> dict[str, str]:
    for col in COLUMNS:
        if not rec[col]:
            raise DataError(path, "empty", record=line, field="language" if col == "lang" else col)
    rec["verdict"] = rec["verdict"].lower()
    if rec["verdict"] not in VERDICTS:
        raise DataError(path, f"{rec['verdict']!r} is not one of {VERDICTS}", record=line, field="verdict")
    return rec


def read_human_csv(path: str | Path) -> pd.DataFrame:
    """Read a human-evaluation CSV (one row per annotator verdict) into a DataFrame of strings.

    Columns ``language`` (or ``lang``), ``benchmark``, ``item``, ``annotator``, ``verdict``, ``model``,
    ``reference`` are required, extra columns are kept; lines starting with ``#`` and blank lines are skipped.
    ``verdict`` is ``model``, ``reference`` or ``tie`` (case and surrounding spaces ignored). All values stay
    strings (``no`` is Norwegian, ``007`` stays ``007``). The returned frame names the language column ``lang``.

    Raises
    ------
    DataError
        Naming the line and column: a missing column, a wrong number of fields, an empty cell, an unknown verdict,
        or a second verdict of one annotator on one item.
    """
    path = Path(path)
    reader = csv.reader(_uncommented(StringIO(read_text(path), newline="")))  # UTF-8, a BOM dropped: io.read_text
    try:
        header = next((row for row in reader if row), None)
        if header is None:
            raise DataError(path, "empty file: expected a header line")
        header = ["lang" if h.strip() == "language" else h.strip() for h in header]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            names = ["language" if c == "lang" else c for c in missing]
            raise DataError(path, f"missing column(s) {names}", record=f"line {reader.line_num}")
        rows = _verdict_rows(reader, header, path)
    except csv.Error as e:  # e.g. a cell over the csv module's field size limit, a NUL byte
        raise DataError(path, f"malformed CSV: {e}", record=f"line {reader.line_num}") from None
    if not rows:
        raise DataError(path, "no verdict rows")
    return pd.DataFrame(rows, columns=header).astype(str)


def _verdict_rows(reader: Any, header: list[str], path: Path) -> list[dict[str, str]]:
    """The checked rows after the header; a second verdict of one annotator on one item is an error."""
    rows, seen = [], {}
    for row in reader:
        if not row:
            continue
        line = f"line {reader.line_num}"
        if len(row) != len(header):
            raise DataError(path, f"{len(row)} fields, header has {len(header)}", record=line)
        rec = _check_row(dict(zip(header, (v.strip() for v in row), strict=True)), path, line)
        key = (*(rec[c] for c in ITEM), rec["annotator"])
        if key in seen:
            msg = f"second verdict of this annotator on this item (first at {seen[key]})"
            raise DataError(path, msg, record=line, field="annotator")
        seen[key] = line
        rows.append(rec)
    return rows


def item_scores(df: pd.DataFrame) -> pd.DataFrame:
    """One row per item: mean annotator score (win 1, tie ½, loss 0), majority verdict, number of annotators.

    The majority verdict is the verdict with strictly the most votes; a tie for the most votes gives ``"tie"``.
    """
    scored = df.assign(score=df["verdict"].map(SCORE))
    counts = pd.crosstab([scored[c] for c in ITEM], scored["verdict"]).reindex(columns=list(VERDICTS), fill_value=0)
    top = counts.to_numpy().max(axis=1, keepdims=True)
    is_top = counts.to_numpy() == top
    majority = np.where(is_top.sum(axis=1) == 1, np.array(VERDICTS)[is_top.argmax(axis=1)], "tie")
    out = scored.groupby(ITEM, sort=True).agg(score=("score", "mean"), n_annotators=("annotator", "nunique"))
    out["majority"] = pd.Series(majority, index=counts.index).reindex(out.index)
    return out.reset_index()


def human_win_rates(df: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Model-vs-reference win rate (percent) per (model, reference, benchmark, lang) with a bootstrap 95% CI.

    Each item's score is the mean of its annotators' votes (win 1, tie ½, loss 0); the win rate is the mean item
    score × 100 and the CI a percentile bootstrap over items (:func:`mdaq.judging.winrate.bootstrap_ci`).

    Returns
    -------
    pandas.DataFrame
        Columns ``model, reference, benchmark, lang, win_rate, ci_low, ci_high, n_items, n_annotators, n_votes``.
    """
    votes = df.groupby(PAIR, sort=True).agg(n_annotators=("annotator", "nunique"), n_votes=("verdict", "size"))
    rows = []
    for key, grp in item_scores(df).groupby(PAIR, sort=True):
        lo, hi = bootstrap_ci(grp["score"].to_numpy() * 100, n_boot, seed)
        rows.append(
            {
                **dict(zip(PAIR, key, strict=True)),
                "win_rate": float(grp["score"].mean() * 100),
                "ci_low": lo,
                "ci_high": hi,
                "n_items": len(grp),
                **{k: int(v) for k, v in votes.loc[key].items()},
            }
        )
    return pd.DataFrame(rows, columns=[*PAIR, "win_rate", "ci_low", "ci_high", "n_items", "n_annotators", "n_votes"])


def _table_columns(wr: pd.DataFrame, sep: str) -> tuple[bool, pd.Series]:
    """Whether :func:`human_win_rates`' frame holds one (model, reference) pair, and each row's table column:
    the benchmark, or ``"<model> vs <reference><sep><benchmark>"`` when there are several pairs."""
    one_pair = len(wr[["model", "reference"]].drop_duplicates()) == 1
    return one_pair, wr["benchmark"] if one_pair else wr["model"] + " vs " + wr["reference"] + sep + wr["benchmark"]


def table1(df: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Human win rates laid out as the paper's Table 1: rows = languages, columns = benchmarks.

    Cells read ``"win% [lo, hi]"`` (one decimal). With several (model, reference) pairs in ``df`` the columns are
    named ``"<model> vs <reference>: <benchmark>"``; a missing combination is an empty string.
    """
    return table1_from_win_rates(human_win_rates(df, n_boot=n_boot, seed=seed))


def table1_from_win_rates(wr: pd.DataFrame) -> pd.DataFrame:
    """:func:`table1` from already computed :func:`human_win_rates` (no second bootstrap)."""
    _, col = _table_columns(wr, ": ")
    cell = [f"{r.win_rate:.1f} [{r.ci_low:.1f}, {r.ci_high:.1f}]" for r in wr.itertuples()]
    table = pd.DataFrame({"lang": wr["lang"], "col": col, "cell": cell}).pivot(index="lang", columns="col")["cell"]
    table.columns.name = None
    return table.fillna("")


def table1_markdown(table: pd.DataFrame) -> str:
    """A :func:`table1` frame as a GitHub-flavoured markdown table."""
    head = [str(table.index.name or ""), *map(str, table.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples()]
    return "\n".join(lines) + "\n"


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa between two raters' labels of the same items: ``(p_o − p_e) / (1 − p_e)``.

    ``p_e`` uses each rater's own label marginals (Cohen 1960). Returns nan for no items or when ``p_e = 1``
    (both raters always give one and the same label), as scikit-learn's ``cohen_kappa_score`` does.
    """
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa: {len(a)} labels vs {len(b)}")
    if len(a) == 0:
        return math.nan
    _, codes = np.unique(np.array([*map(str, a), *map(str, b)]), return_inverse=True)
    k, n = int(codes.max()) + 1, len(a)
    confusion = np.bincount(codes[:n] * k + codes[n:], minlength=k * k).reshape(k, k) / n
    p_o = np.trace(confusion)
    p_e = float(confusion.sum(axis=1) @ confusion.sum(axis=0))
    return math.nan if math.isclose(p_e, 1.0) else float((p_o - p_e) / (1 - p_e))


def fleiss_kappa(counts: Sequence[Sequence[float]] | np.ndarray) -> float:
    """Fleiss' kappa of an items × categories matrix of rating counts (Fleiss 1971).

    ``P_i = (Σ_j n_ij² − n_i) / (n_i (n_i − 1))``, ``p_j = Σ_i n_ij / Σ_i n_i``, ``κ = (P̄ − P_e) / (1 − P_e)``
    with ``P_e = Σ_j p_j²``. Rows may have different numbers of ratings ``n_i`` (each at least 2); with equal
    ``n_i`` this is exactly Fleiss' statistic. Returns nan for no rows or when ``P_e = 1``.

    Raises
    ------
    ValueError
        On a non-2-D or negative matrix, or a row with fewer than 2 ratings.
    """
    c = np.asarray(counts, dtype=float)
    if c.ndim != 2 or (c < 0).any():
        raise ValueError("fleiss_kappa: expected a 2-D matrix of non-negative counts")
    if len(c) == 0:
        return math.nan
    n_i = c.sum(axis=1)
    if (n_i < 2).any():
        raise ValueError(f"fleiss_kappa: row {int(np.flatnonzero(n_i < 2)[0])} has fewer than 2 ratings")
    p_bar = float(np.mean(((c**2).sum(axis=1) - n_i) / (n_i * (n_i - 1))))
    p_e = float(((c.sum(axis=0) / c.sum()) ** 2).sum())
    return math.nan if math.isclose(p_e, 1.0) else (p_bar - p_e) / (1 - p_e)


def inter_annotator_agreement(df: pd.DataFrame) -> pd.DataFrame:
    """Agreement between annotators per language, over items (any benchmark and pair) with at least 2 annotators.

    Returns
    -------
    pandas.DataFrame
        Columns ``lang, n_items, n_annotators, observed_agreement`` (mean share of agreeing annotator pairs per
        item, Fleiss' ``P̄``), ``fleiss_kappa`` and ``cohen_kappa`` (only when the language has exactly 2
        annotators, over the items both judged; nan otherwise).
    """
    rows = []
    for lang, sub in df.groupby("lang", sort=True):
        counts = pd.crosstab([sub[c] for c in ITEM[1:]], sub["verdict"]).reindex(columns=list(VERDICTS), fill_value=0)
        counts = counts[counts.sum(axis=1) >= 2]
        c, n_i = counts.to_numpy(float), counts.to_numpy().sum(axis=1)
        observed = float(np.mean(((c**2).sum(axis=1) - n_i) / (n_i * (n_i - 1)))) if len(c) else math.nan
        annotators = sorted(sub["annotator"].unique())
        cohen = math.nan
        if len(annotators) == 2:
            wide = sub.pivot(index=ITEM[1:], columns="annotator", values="verdict").dropna()
            cohen = cohen_kappa(wide[annotators[0]].tolist(), wide[annotators[1]].tolist())
        rows.append(
            {
                "lang": lang,
                "n_items": len(c),
                "n_annotators": len(annotators),
                "observed_agreement": observed,
                "fleiss_kappa": fleiss_kappa(c),
                "cohen_kappa": cohen,
            }
        )
    return pd.DataFrame(
        rows, columns=["lang", "n_items", "n_annotators", "observed_agreement", "fleiss_kappa", "cohen_kappa"]
    )


def judge_agreement(
    human_df: pd.DataFrame, judgment_records: Sequence[Mapping[str, Any]], *, lang_policy: str = "ignore"
) -> pd.DataFrame:
    """Agreement of the LLM judge's combined outcome (:func:`mdaq.judging.winrate.combine_orders`) with the human
    majority.

    Items match on ``(lang, benchmark, item = item_id, model, reference)``. Items the judge left unparsed are
    excluded and counted in ``n_unparsed``; human items with no judgment are counted in ``n_unmatched``.

    Returns
    -------
    pandas.DataFrame
        One row per language plus ``lang = "all"``: ``lang, n_items, n_unparsed, n_unmatched, agreement`` (share of
        items where the judge's outcome equals the human majority verdict) and ``cohen_kappa`` between the two.
    """
    judged = {
        (it["lang"], it["benchmark"], it["item_id"], it["model"], it["reference"]): it["outcome"]
        for it in combine_orders(judgment_records, lang_policy=lang_policy)
    }
    items = item_scores(human_df)
    items["judge"] = [judged.get(tuple(r), "<unmatched>") for r in items[ITEM].itertuples(index=False)]
    rows = []
    for lang, sub in [*items.groupby("lang", sort=True), ("all", items)]:
        ok = sub[sub["judge"].isin(VERDICTS)]
        rows.append(
            {
                "lang": lang,
                "n_items": len(ok),
                "n_unparsed": int(sub["judge"].isna().sum()),
                "n_unmatched": int((sub["judge"] == "<unmatched>").sum()),
                "agreement": float((ok["judge"] == ok["majority"]).mean()) if len(ok) else math.nan,
                "cohen_kappa": cohen_kappa(ok["majority"].tolist(), ok["judge"].tolist()),
            }
        )
    return pd.DataFrame(rows)


def human_eval_report(
    path: str | Path, judgments: str | Path | None = None, *, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Everything the ``human-eval`` command prints: win rates, annotator agreement, judge agreement (strict JSON).

    Raises
    ------
    DataError
        On a bad CSV, or a ``judgments`` file that is not an mdaq judgment file.
    """
    df = read_human_csv(path)
    out = {
        "win_rates": human_win_rates(df, n_boot=n_boot, seed=seed).to_dict(orient="records"),
        "inter_annotator": inter_annotator_agreement(df).to_dict(orient="records"),
    }
    if judgments is not None:
        jf = read_judgments(judgments)
        if jf.kind != "mdaq":
            raise DataError(judgments, "judge agreement needs an mdaq judgment file (JSONL with both orders)")
        out["judge_agreement"] = judge_agreement(df, jf.records).to_dict(orient="records")
    return json_safe(out)


def read_human_dir(folder: str | Path) -> pd.DataFrame | None:
    """Every ``*.csv`` in ``folder`` (sorted by name) as one frame with a ``source`` column; None when there is none.

    Raises
    ------
    DataError
        From :func:`read_human_csv`, naming the file; or the same (item, annotator) verdict in two files.
    """
    files = sorted(Path(folder).glob("*.csv")) if Path(folder).is_dir() else []
    if not files:
        return None
    frames = [read_human_csv(f).assign(source=f.name) for f in files]
    df = pd.concat(frames, ignore_index=True)
    dup = df.duplicated([*ITEM, "annotator"], keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        raise DataError(
            folder,
            f"one annotator's verdict on one item appears in {sorted(set(df[dup]['source']))}",
            record=f"{first['lang']}/{first['benchmark']}/{first['item']}",
            field="annotator",
        )
    return df


def plot_table1(win_rates: pd.DataFrame | None, path: str | Path, *, note: str = "") -> Path:
    """The human-evaluation table as a figure: languages × (pair, benchmark) cells coloured by win rate, each
    reading ``win% [lo, hi]``. ``win_rates`` is :func:`human_win_rates`' frame; None or empty draws a figure
    that says there are no human judgments (so the stage's output always exists and never shows made-up data)."""
    import matplotlib.pyplot as plt

    from mdaq.io import save_figure

    if win_rates is None or win_rates.empty:
        fig, ax = plt.subplots(figsize=(6.4, 1.6))
        ax.axis("off")
        ax.text(0.5, 0.5, note or "No human judgments", ha="center", va="center", wrap=True, fontsize=10)
        return save_figure(fig, path)
    wr = win_rates.copy()
    one_pair, wr["col"] = _table_columns(wr, "\n")
    grid = wr.pivot(index="lang", columns="col", values="win_rate")
    text = wr.assign(t=[f"{r.win_rate:.1f}\n[{r.ci_low:.1f}, {r.ci_high:.1f}]" for r in wr.itertuples()])
    text = text.pivot(index="lang", columns="col", values="t").reindex_like(grid)
    fig, ax = plt.subplots(figsize=(1.9 * grid.shape[1] + 1.6, 0.6 * grid.shape[0] + 1.4))
    im = ax.imshow(grid.to_numpy(dtype=float), cmap="RdBu", vmin=0, vmax=100, aspect="auto")
    for (i, j), t in np.ndenumerate(text.to_numpy()):
        ax.text(j, i, "" if pd.isna(t) else t, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(grid.shape[1]), grid.columns, fontsize=8)
    ax.set_yticks(range(grid.shape[0]), grid.index)
    pair = f"{wr['model'].iloc[0]} vs {wr['reference'].iloc[0]}: " if one_pair else ""
    ax.set_title(f"Human evaluation, {pair}win rate % [95% CI] (ties ½)" + (f"\n{note}" if note else ""), fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04, label="win rate (%)")
    return save_figure(fig, path)


NO_HUMAN_DATA = (
    "No human judgments: add CSVs in the format of docs/human-eval.md to {folder}/ and rerun "
    "`dvc repro` (the examples/ file is synthetic and never read here)."
)


def run_human_eval_stage(
    folder: str | Path, out_dir: str | Path, figure: str | Path, *, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """The ``human_eval`` stage: Table 1 (markdown and CSV), win rates, annotator agreement and the figure from
    the CSVs in ``folder``; with none, a ``skipped`` status and a figure that says so.

    Writes ``out_dir/status.json`` always; ``table1.md``, ``win_rates.csv`` and ``inter_annotator.csv`` when
    there are judgments (stale ones from an earlier run are removed).
    """
    from mdaq.io import atomic_path, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("table1.md", "win_rates.csv", "inter_annotator.csv"):
        (out / name).unlink(missing_ok=True)
    df = read_human_dir(folder)
    if df is None:
        msg = NO_HUMAN_DATA.format(folder=Path(folder).as_posix())
        plot_table1(None, figure, note=msg)
        status = {"status": "skipped", "reason": msg, "files": []}
        write_json(out / "status.json", status)
        return status
    wr = human_win_rates(df, n_boot=n_boot, seed=seed)
    with atomic_path(out / "win_rates.csv") as tmp:
        wr.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(out / "inter_annotator.csv") as tmp:
        inter_annotator_agreement(df).to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(out / "table1.md") as tmp:
        tmp.write_text(table1_markdown(table1_from_win_rates(wr)), encoding="utf-8")
    plot_table1(wr, figure)
    status = {
        "status": "ok",
        "files": sorted(set(df["source"])),
        "n_votes": len(df),
        "n_items": int(wr["n_items"].sum()),
        "languages": sorted(set(df["lang"])),
    }
    write_json(out / "status.json", status)
    return status
