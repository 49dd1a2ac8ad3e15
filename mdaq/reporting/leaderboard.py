"""Build the leaderboard from per-run ``metrics.json`` files, with provenance; only this module writes it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.config import Params, section_sha
from mdaq.io import atomic_path, read_json, write_json
from mdaq.provenance import run_sections

INTRINSIC = ("cluster_coverage", "mean_pairwise_distance", "mean_quality", "len_mean")  # from the intrinsic stage
GENERATION = ("share_target_lang",)  # from generation.json (language fidelity of the generated answers)
JUDGE = ("win_rate_alpaca_eval", "win_rate_mt_bench_r1", "win_rate_mt_bench_r2")  # vs judge.reference, percent
JUDGE_STATS = tuple(f"{c}_{s}" for c in JUDGE for s in ("se", "ci_low", "ci_high", "n"))  # per win rate
COLUMNS = [
    "method",
    "lang",
    "expert_pref_acc",
    "expert_pref_acc_se",
    "ref_nll",
    "n",
    "n_selected",
    "share_revised",
    *INTRINSIC,
    *GENERATION,
    *JUDGE,
    "judge_id",
    "prompt_version",
    "status",
    "selector_version",
    "base_model",
    "params_sha",
    "git_sha",
    "date",
    *JUDGE_STATS,
]
LONG_METRICS = ("expert_pref_acc", "ref_nll", "share_revised", *INTRINSIC, *GENERATION, *JUDGE)
LONG_COLUMNS = [
    "method",
    "language",
    "metric",
    "value",
    "se",
    "ci_low",
    "ci_high",
    "n",
    "status",
    "params_sha",
    "git_sha",
    "judge_id",
    "prompt_version",
    "date",
]
Z95 = 1.959963984540054
MEAN_FIELDS = ("expert_pref_acc", "ref_nll", "share_revised", *INTRINSIC, *GENERATION, *JUDGE)


_BENCH = tuple(c.removeprefix("win_rate_") for c in JUDGE)


def _row(metrics: dict[str, Any], params: Params) -> dict[str, Any]:
    row = {c: metrics.get(c, float("nan")) for c in COLUMNS}
    current = section_sha(params, *run_sections(metrics["method"]))
    judged = any(not _isnan(metrics.get(c)) for c in JUDGE)
    row["status"] = "stale" if metrics.get("params_sha") != current else ("ok" if judged else "partial")
    if metrics.get("invalid_reason"):
        row["status"] = "invalid"  # a stand-in judge's verdicts: the win-rate columns stay empty
    return row


def _from_test_double(judged: dict[str, Any]) -> bool:
    """Whether a ``judge.json`` holds a test double's verdicts: its ``test_double`` flag, or (files written before
    the flag) a judge id whose backend is a registered test double."""
    from mdaq.judging import JUDGES

    if "test_double" in judged:
        return bool(judged["test_double"])
    backend = str(judged.get("judge_id", "")).split(":")[0]
    return backend in JUDGES.names() and JUDGES.get(backend).is_test_double


def _isnan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _mean_row(method: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Macro-average over languages; SE of the mean from per-language SEs (independent samples)."""
    out: dict[str, Any] = {c: "" for c in COLUMNS}
    out.update(method=method, lang="all", n=int(sum(r["n"] for r in rows)))
    for f in MEAN_FIELDS:
        vals = [r[f] for r in rows if not _isnan(r[f])]
        out[f] = float(np.mean(vals)) if len(vals) == len(rows) and vals else float("nan")
    ses = [r["expert_pref_acc_se"] for r in rows]
    out["expert_pref_acc_se"] = float(np.sqrt(np.sum(np.square(ses))) / len(ses))
    for c in JUDGE:  # macro-average of independent per-language win rates: normal interval from the per-language SEs
        ses = [r[f"{c}_se"] for r in rows]
        if _isnan(out[c]) or any(_isnan(x) for x in ses):
            continue
        se = float(np.sqrt(np.sum(np.square(ses))) / len(ses))
        out.update(
            {
                f"{c}_se": se,
                f"{c}_ci_low": out[c] - Z95 * se,
                f"{c}_ci_high": out[c] + Z95 * se,
                f"{c}_n": int(sum(r[f"{c}_n"] for r in rows)),
            }
        )
    out["n_selected"] = int(sum(r["n_selected"] for r in rows))
    statuses = {r["status"] for r in rows}
    out["status"] = next((s for s in ("invalid", "stale", "partial") if s in statuses), "ok")
    for key in ("selector_version", "base_model", "params_sha", "git_sha", "judge_id", "prompt_version"):
        vals = {str(r[key]) for r in rows}
        out[key] = vals.pop() if len(vals) == 1 else "mixed"
    out["date"] = max(str(r["date"]) for r in rows)
    return out


def build_leaderboard(
    runs_dir: str | Path,
    params: Params,
    methods: Sequence[str],
    langs: Sequence[str],
    intrinsic: Any = None,
    judge_dir: str | Path | None = None,
):
    """One row per (method, lang) plus a ``lang = all`` macro-average per method, best method first.

    ``intrinsic`` (the long table of :func:`mdaq.evaluation.intrinsic.intrinsic_report`) adds the per-language-mode
    selection metrics :data:`INTRINSIC`; without it those columns are NaN.
    ``judge_dir/<method>/<lang>/judge.json`` (the ``judge`` stage) adds the win rates :data:`JUDGE` against
    ``judge.reference``; skipped judges leave NaN. A ``generation.json`` beside a run's
    ``metrics.json`` (written by the ``evaluate`` stage) adds :data:`GENERATION`.

    Raises
    ------
    FileNotFoundError
        A (method, lang) of the current params has no metrics file (run ``dvc repro``).
    """
    import pandas as pd

    extra: dict[tuple[str, str, str], float] = {}
    if intrinsic is not None:
        sub = intrinsic[(intrinsic["mode"] == "per_language") & intrinsic["metric"].isin(INTRINSIC)]
        extra = {(r.method, r.language, r.metric): float(r.value) for r in sub.itertuples()}
    rows = []
    for method in methods:
        per_lang = []
        for lang in langs:
            path = Path(runs_dir) / method / lang / "metrics.json"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no metrics for {method}/{lang}; run `dvc repro`")
            metrics = read_json(path)
            verdict = Path(judge_dir) / method / lang / "judge.json" if judge_dir else None
            judged = read_json(verdict) if verdict is not None and verdict.is_file() else {}
            if judged.get("status") == "ok" and _from_test_double(judged):
                metrics["invalid_reason"] = f"judged by a test double ({judged.get('judge_id')}): not a win rate"
            elif judged.get("status") == "ok":
                metrics.update(judge_id=judged["judge_id"], prompt_version=judged.get("prompt_version"))
                for b in _BENCH:
                    st = judged.get(b) or {}
                    metrics[f"win_rate_{b}"] = st.get("win_rate")
                    pairs = (("se", "standard_error"), ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("n", "n_total"))
                    metrics.update({f"win_rate_{b}_{k}": st.get(src) for k, src in pairs})
            row = _row(metrics, params)
            row.update({m: extra.get((method, lang, m), float("nan")) for m in INTRINSIC})
            gen = path.with_name("generation.json")
            summary = read_json(gen) if gen.is_file() else {}
            row.update({m: summary.get(m, float("nan")) for m in GENERATION})
            per_lang.append(row)
        rows += per_lang + [_mean_row(method, per_lang)]
    df = pd.DataFrame(rows, columns=COLUMNS)
    score = df[df["lang"] == "all"].set_index("method")["expert_pref_acc"]
    df["_rank"] = df["method"].map(-score.fillna(-np.inf))
    df["_all"] = df["lang"] == "all"
    df = df.sort_values(["_rank", "method", "_all", "lang"], kind="stable").drop(columns=["_rank", "_all"])
    return df.reset_index(drop=True)


def to_markdown(df) -> str:
    """Wide view for the README: one row per method, expert-preference accuracy per language and mean."""
    wide = df.pivot(index="method", columns="lang", values="expert_pref_acc")
    langs = [c for c in wide.columns if c != "all"] + ["all"]
    wide = wide[langs]
    mean = df[df["lang"] == "all"].set_index("method")
    wide["share revised"] = mean["share_revised"]
    wide["coverage"] = mean["cluster_coverage"]
    judged = [c for c in JUDGE if mean[c].notna().any()]
    for c in judged:
        wide[c.replace("win_rate_", "win % ")] = mean[c]
    wide = wide.sort_values("all", ascending=False)
    cols = list(wide.columns)
    head = "| method | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols) + "\n"
    body = "".join(f"| {m} | " + " | ".join(f"{v:.3f}" for v in r) + " |\n" for m, r in wide.iterrows())
    nll = df[df["lang"] == "all"].set_index("method")["ref_nll"]
    note = (
        "\nExpert-preference accuracy on held-out MIDB pairs per language and mean (`all`; higher is better); "
        "`share revised` = share of expert-revised samples in the training selection (random ≈ 0.5), "
        "`coverage` = share of the pool's k-means clusters it touches (means over languages). "
        "Mean NLL of revised responses: "
    )
    note += ", ".join(f"{m} {v:.3f}" for m, v in nll.items()) + "."
    if judged:
        ids = ", ".join(sorted({str(v) for v in mean["judge_id"] if str(v) not in ("", "nan")}))
        note += " `win %` = LLM-judge win rate (percent; ties ½; both answer orders) against the reference method"
        note += f" `judge.reference`, judge {ids}."
    else:
        note += " No LLM judge was configured, so there are no win rates (`judge.backend: none`)."
    note += "\n"
    return head + body + note


def _num(x: Any) -> float:
    return float("nan") if _isnan(x) or x == "" else float(x)


def to_long(df) -> Any:
    """The leaderboard in long format: one row per (method, language, metric) with value, SE, 95% interval, ``n``
    and provenance (params hash, git sha, judge id, prompt version, date). Metrics that were not computed (win rates
    without a judge) have no row.

    Intervals: ``expert_pref_acc`` ± 1.96 SE (binomial, clipped to [0, 1]); win rates: the judge stage's bootstrap
    interval per language and a normal interval for the ``all`` macro-average; descriptive metrics have none.
    """
    import pandas as pd

    rows = []
    for r in df.to_dict("records"):
        base = {k: r.get(k) for k in ("status", "params_sha", "git_sha", "judge_id", "prompt_version", "date")}
        for m in LONG_METRICS:
            value = _num(r.get(m))
            if math.isnan(value):
                continue
            se = lo = hi = float("nan")
            n = r.get("n_selected") if m in ("share_revised", *INTRINSIC) else r.get("n")
            if m == "expert_pref_acc":
                se = _num(r.get("expert_pref_acc_se"))
                lo, hi = max(0.0, value - Z95 * se), min(1.0, value + Z95 * se)
            elif m in JUDGE:
                se, lo, hi = (_num(r.get(f"{m}_{k}")) for k in ("se", "ci_low", "ci_high"))
                n = r.get(f"{m}_n")
            elif m in GENERATION:
                n = float("nan")
            rows.append(
                {
                    "method": r["method"],
                    "language": r["lang"],
                    "metric": m,
                    "value": value,
                    "se": se,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n": n,
                    **base,
                }
            )
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def write_leaderboard(df, out_dir: str | Path, html: str | None = None) -> None:
    """Write ``leaderboard.csv`` (long format, :func:`to_long`), ``leaderboard_wide.csv`` (one row per method and
    language), ``leaderboard.md``, ``metrics.json`` (the `lang=all` rows) and, when given, ``leaderboard.html``,
    each atomically."""
    out_dir = Path(out_dir)
    with atomic_path(out_dir / "leaderboard.csv") as tmp:
        to_long(df).to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out_dir / "leaderboard_wide.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    if html is not None:
        with atomic_path(out_dir / "leaderboard.html") as tmp:
            tmp.write_text(html, encoding="utf-8")
    with atomic_path(out_dir / "leaderboard.md") as tmp:
        tmp.write_text(to_markdown(df), encoding="utf-8")
    summary = {
        r["method"]: {k: (None if _isnan(r[k]) else r[k]) for k in ("expert_pref_acc", "ref_nll", "n")}
        for r in df[df["lang"] == "all"].to_dict("records")
    }
    write_json(out_dir / "metrics.json", summary)


README_START, README_END = "<!-- leaderboard:start -->", "<!-- leaderboard:end -->"


def update_readme(readme: str | Path, leaderboard_md: str | Path) -> bool:
    """Replace the block between the leaderboard markers in ``readme`` by ``leaderboard_md``; True if changed."""
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme}: missing {README_START} / {README_END} markers")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    table = Path(leaderboard_md).read_text(encoding="utf-8").strip()
    new = f"{head}{README_START}\n{table}\n{README_END}{tail}"
    if new != text:
        with atomic_path(readme) as tmp:
            tmp.write_text(new, encoding="utf-8")
    return new != text


def readme_block(readme: str | Path) -> str:
    """The text between the leaderboard markers (for the consistency test)."""
    text = Path(readme).read_text(encoding="utf-8")
    return text.split(README_START, 1)[1].split(README_END, 1)[0].strip()
