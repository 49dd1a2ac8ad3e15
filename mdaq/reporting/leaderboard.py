"""Build the leaderboard from per-run ``metrics.json`` files, with provenance; only this module writes it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.config import Params
from mdaq.io import atomic_path, read_items, read_json, write_json
from mdaq.names import path_under
from mdaq.provenance import BASE, run_sha

INTRINSIC = ("cluster_coverage", "mean_pairwise_distance", "mean_quality", "len_mean")  # from the intrinsic stage
GENERATION = ("share_target_lang",)  # from generation.json (language fidelity of the generated answers)
TRAINING = ("optimizer_steps", "share_truncated_train")  # from each run's train.json, means over seeds
JUDGE = ("win_rate_alpaca_eval", "win_rate_mt_bench_r1", "win_rate_mt_bench_r2")  # vs judge.reference, percent
JUDGE_STATS = tuple(f"{c}_{s}" for c in JUDGE for s in ("se", "ci_low", "ci_high", "n"))  # per win rate
COLUMNS = [
    "method",
    "lang",
    "role",
    "tier",
    "expert_pref_acc",
    "expert_pref_acc_se",
    "acc_seed_sd",
    "n_seeds",
    "ref_nll",
    "ref_nll_se",
    "margin",
    "group",
    "n",
    "n_selected",
    "share_revised",
    *TRAINING,
    "truncated_heldout",
    *INTRINSIC,
    *GENERATION,
    *JUDGE,
    "judge_id",
    "prompt_version",
    "status",
    "selector_version",
    "base_model",
    "pool_hash",
    "params_sha",
    "git_sha",
    "date",
    "selection_s",
    "paper",
    "code",
    *JUDGE_STATS,
]
ROW_INFO = ("tier", "pool_hash", "selection_s", "paper", "code")  # per method, the same in every language row
COMPARE = ("d_acc", "d_acc_lo", "d_acc_hi", "p_acc_holm", "d_margin", "d_margin_lo", "d_margin_hi", "p_margin_holm")
ROLE_ORDER = {"base": 0, "reference": 1, "method": 2, "control": 3}
CONTROLS = ("oracle_revised", "oracle_raw")  # positive, negative


def compare_columns(against: Sequence[str]) -> list[str]:
    """Leaderboard columns of the paired comparisons: ``<stat>_vs_<method>`` for each method of ``against``."""
    return [f"{c}_vs_{a}" for a in against for c in COMPARE]


LONG_METRICS = ("expert_pref_acc", "ref_nll", "margin", "share_revised", *INTRINSIC, *GENERATION, *JUDGE)
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
    "tier",
    "pool_hash",
    "params_sha",
    "git_sha",
    "judge_id",
    "prompt_version",
    "date",
]
Z95 = 1.959963984540054
MEAN_FIELDS = ("share_revised", *TRAINING, "truncated_heldout", *INTRINSIC, *GENERATION, *JUDGE)


_BENCH = tuple(c.removeprefix("win_rate_") for c in JUDGE)


def _row(metrics: dict[str, Any], params: Params) -> dict[str, Any]:
    row = {c: metrics.get(c, float("nan")) for c in COLUMNS}
    current = run_sha(params, metrics["method"])
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
    out.update(method=method, lang="all", role=rows[0]["role"], n=int(sum(r["n"] for r in rows)))
    for f in MEAN_FIELDS:
        vals = [r[f] for r in rows if not _isnan(r[f])]
        out[f] = float(np.mean(vals)) if len(vals) == len(rows) and vals else float("nan")
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
    out["n_selected"] = float(sum(r["n_selected"] for r in rows))
    statuses = {r["status"] for r in rows}
    out["status"] = next((s for s in ("invalid", "stale", "partial") if s in statuses), "ok")
    for key in ("selector_version", "base_model", "params_sha", "git_sha", "judge_id", "prompt_version"):
        vals = {str(r[key]) for r in rows}
        out[key] = vals.pop() if len(vals) == 1 else "mixed"
    out["date"] = max(str(r["date"]) for r in rows)
    out.update({key: rows[0][key] for key in ROW_INFO})
    return out


def load_runs(
    runs_dir: str | Path,
    methods: Sequence[str],
    langs: Sequence[str],
    seeds: Sequence[int] | Mapping[str, Sequence[int]],
    sources: Mapping[tuple[str, str, int], str] | None = None,
) -> dict[str, dict[str, list[tuple[int, dict[str, Any], Any]]]]:
    """Every run's ``metrics.json`` and per-item records: ``{method: {lang: [(seed, metrics, items), ...]}}`` from
    ``runs_dir/<method>/<lang>/s<seed>/``; ``seeds`` for every method, or per method (``Params.seeds_of``); the
    ``base`` row has one run, ``s0``. ``sources`` maps a (method, lang, seed) to the method whose run of that language
    and seed it is (a submission run that reuses a built-in run: ``params.reused_runs``).

    Raises
    ------
    FileNotFoundError
        A run of the current params is missing (run ``dvc repro``).
    """
    out: dict[str, dict[str, list[tuple[int, dict[str, Any], Any]]]] = {}
    for method in methods:
        for lang in langs:
            own = seeds.get(method, ()) if isinstance(seeds, Mapping) else seeds
            for seed in (0,) if method == BASE else own:
                source = (sources or {}).get((method, lang, seed), method)
                run = path_under(runs_dir, source, lang, f"s{seed}")
                if not (run / "metrics.json").is_file():
                    raise FileNotFoundError(f"{run}: no metrics for {method}/{lang}/seed {seed}; run `dvc repro`")
                items = read_items(run / "items.csv")
                out.setdefault(method, {}).setdefault(lang, []).append((seed, read_json(run / "metrics.json"), items))
    return out


def seed_averaged_records(runs: dict[str, dict[str, list[tuple[int, dict[str, Any], Any]]]]) -> dict[str, Any]:
    """Per method, the per-item records of all languages averaged over its seeds (:func:`mdaq.stats.seed_average`:
    ``correct`` becomes the share of seeds that prefer the revised response, ``margin`` the mean margin)."""
    import pandas as pd

    from mdaq.stats import seed_average

    out = {}
    for method, by_lang in runs.items():
        seeds = sorted({seed for runs_ in by_lang.values() for seed, _, _ in runs_})
        frames = [
            pd.concat([items for runs_ in by_lang.values() for s, _, items in runs_ if s == seed], ignore_index=True)
            for seed in seeds
        ]
        out[method] = seed_average(frames)
    return out


def _training_fields(
    runs_dir: str | Path, method: str, lang: str, seeds: Sequence[int], sources: Mapping[tuple[str, str, int], str]
) -> dict[str, float]:
    """Optimizer steps and the share of training samples whose response was cut at ``train.max_seq_len``, means
    over the seeds' ``train.json`` (NaN for the base row, which is not trained); a reused run's are its source's."""
    paths = [path_under(runs_dir, sources.get((method, lang, s), method), lang, f"s{s}", "train.json") for s in seeds]
    records = [read_json(p) for p in paths if p.is_file()]
    if not records:
        return dict.fromkeys(TRAINING, float("nan"))
    return {
        "optimizer_steps": float(np.mean([r.get("n_steps", np.nan) for r in records])),
        "share_truncated_train": float(np.mean([r.get("share_truncated", np.nan) for r in records])),
    }


def _accuracy_fields(items: Any, per_seed_acc: Sequence[float]) -> dict[str, Any]:
    """Accuracy (seed-averaged items), its SE over items, the SD of the per-seed accuracies, NLL with SE, margin."""
    from mdaq.stats import ratio_nll

    n = len(items)
    acc = float(items["correct"].mean())
    nll, nll_se = ratio_nll(items["chosen_lp"], items["chosen_n"])
    return {
        "expert_pref_acc": acc,
        "expert_pref_acc_se": float(items["correct"].std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
        "acc_seed_sd": float(np.std(per_seed_acc, ddof=1)) if len(per_seed_acc) > 1 else float("nan"),
        "n_seeds": len(per_seed_acc),
        "ref_nll": float(nll),
        "ref_nll_se": float(nll_se),
        "margin": float(items["margin"].mean()),
        "n": n,
    }


def paired_report(records: dict[str, Any], roles: dict[str, str], params: Params) -> dict[str, Any]:
    """The paired comparisons of the board on the same held-out items (:mod:`mdaq.stats`).

    Returns ``comparisons`` (long table: every other row against each method of ``compare.against`` that is on the
    board, over all items and per language, Holm-adjusted over the rows of each (against, scope) table),
    ``controls`` (``oracle_revised`` against ``oracle_raw``, one pre-specified test: ``separated`` when the positive
    control is significantly better at ``compare.alpha``; ``None`` without both controls) and ``groups``
    (:func:`mdaq.stats.indistinguishable_groups` over the non-control rows).
    """
    import pandas as pd

    from mdaq.stats import compare_table, indistinguishable_groups, paired_compare

    cfg = params.compare
    tables = []
    langs = sorted(set(next(iter(records.values()))["lang"])) if records else []
    for against in [a for a in cfg.against if a in records]:
        for scope in ["all", *langs]:
            sub = {m: r if scope == "all" else r[r["lang"] == scope] for m, r in records.items()}
            if len(sub) < 2:
                continue
            t = compare_table(sub, against, n_boot=cfg.n_boot, seed=params.seed, alpha=cfg.alpha)
            tables.append(t.assign(scope=scope))
    comparisons = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    controls = None
    if all(c in records for c in CONTROLS):
        res = paired_compare(*(records[c] for c in CONTROLS), n_boot=cfg.n_boot, seed=params.seed, alpha=cfg.alpha)
        controls = {**res, "separated": bool(res["p_acc"] < cfg.alpha and res["d_acc"] > 0), "alpha": cfg.alpha}
    ranked = {m: r for m, r in records.items() if roles.get(m) != "control"}
    groups = indistinguishable_groups(ranked, alpha=cfg.alpha) if len(ranked) > 1 else [list(ranked)]
    return {"comparisons": comparisons, "controls": controls, "groups": groups, "alpha": cfg.alpha}


def build_leaderboard(
    runs_dir: str | Path,
    params: Params,
    methods: Sequence[str],
    langs: Sequence[str],
    intrinsic: Any = None,
    judge_dir: str | Path | None = None,
    *,
    seeds: Sequence[int] | None = None,
    with_base: bool = True,
    pool: Mapping[str, Any] | None = None,
    submissions: Mapping[str, Mapping[str, Any]] | None = None,
    links: Mapping[str, Mapping[str, str]] | None = None,
):
    """One row per (method, lang) plus a ``lang = all`` row per method (all items of all languages), with the
    ``base`` row of the un-tuned model first when ``with_base``, and one row per submission after the methods.

    Accuracy, NLL and margin come from the per-item records (``items.csv``) averaged over the ``seeds`` (default: each
    method's own, ``params.seeds_of``); ``acc_seed_sd`` is the spread of the per-seed accuracies. The paired
    comparisons of :func:`paired_report` fill the ``<stat>_vs_<method>`` columns (:func:`compare_columns`) and
    ``group``; the report itself is in ``df.attrs["report"]`` (comparisons as a list of records). Rows are ranked by
    accuracy when the controls separate (or are absent), otherwise listed by role and name: the metric cannot rank
    methods there.

    ``intrinsic`` (the long table of :func:`mdaq.evaluation.intrinsic.intrinsic_report`) adds the per-language-mode
    selection metrics :data:`INTRINSIC`; ``judge_dir/<method>/<lang>/judge.json`` (the ``judge`` stage) adds the
    win rates :data:`JUDGE` against ``judge.reference``; a ``generation.json`` beside the first seed's
    ``metrics.json`` adds :data:`GENERATION`.

    One recipe for everyone (``docs/submitting.md``): ``submissions`` (the ``submission`` stage's records keyed by
    ``sub.<name>``, :func:`mdaq.reporting.tiers.read_submission_records`) join the board with the same seeds, paired
    comparisons and controls; a run of ``params.reused_runs`` is read from the built-in run it names. ``pool`` (the
    frozen pool's manifest) is the pool every row must have been trained on: each run's ``pool_sha256`` is checked
    against it and its hash fills ``pool_hash``. ``links`` gives the ``paper`` / ``code`` of built-in rows
    (:func:`mdaq.reporting.tiers.builtin_links`); ``tier`` is ``builtin``, ``verified`` or ``community``.

    Raises
    ------
    FileNotFoundError
        A (method, lang, seed) of the current params has no run (run ``dvc repro``).
    DataError
        A run or submission made on another pool than ``pool``.
    """
    import pandas as pd

    from mdaq.reporting.tiers import check_pool, reuse_sources, row_info

    submissions = dict(submissions or {})
    board = [BASE, *methods, *submissions] if with_base else [*methods, *submissions]
    per_method = {m: list(params.seeds_of(m) if seeds is None else seeds) for m in [*methods, *submissions]}
    sources = reuse_sources(params, submissions) if submissions else {}
    runs = load_runs(runs_dir, board, langs, per_method, sources)
    if pool is not None:
        check_pool(runs, pool, runs_dir)
    info = {m: row_info(m, submissions, pool, links or {}) for m in board}
    records = seed_averaged_records(runs)
    roles = {m: str(runs[m][langs[0]][0][1].get("role", "base" if m == BASE else "method")) for m in board}
    report = paired_report(records, roles, params)
    extra: dict[tuple[str, str, str], float] = {}
    if intrinsic is not None:
        sub = intrinsic[(intrinsic["mode"] == "per_language") & intrinsic["metric"].isin(INTRINSIC)]
        extra = {(r.method, r.language, r.metric): float(r.value) for r in sub.itertuples()}
    group_of = {m: i + 1 for i, g in enumerate(report["groups"]) for m in g}
    rows = []
    for method in board:
        per_lang = []
        for lang in langs:
            seed_runs = runs[method][lang]
            metrics = dict(seed_runs[0][1])
            folder = path_under(runs_dir, sources.get((method, lang, seed_runs[0][0]), method), lang)
            verdict = path_under(judge_dir, folder.parent.name, lang, "judge.json") if judge_dir else None
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
            row = {**_row(metrics, params), "method": method, **info[method]}
            if any(_row(m, params)["status"] == "stale" for _, m, _ in seed_runs[1:]):
                row["status"] = "stale"
            items = records[method][records[method]["lang"] == lang]
            row.update(_accuracy_fields(items, [float(it["correct"].mean()) for _, _, it in seed_runs]))
            row.update(role=roles[method], group=group_of.get(method, float("nan")))
            row["n_selected"] = float(np.mean([m.get("n_selected", 0) for _, m, _ in seed_runs]))
            row["share_revised"] = float(np.mean([_num(m.get("share_revised")) for _, m, _ in seed_runs]))
            row.update(_training_fields(runs_dir, method, lang, [s for s, _, _ in seed_runs], sources))
            row["truncated_heldout"] = _num(metrics.get("truncated_chosen"))
            row.update({m: extra.get((method, lang, m), float("nan")) for m in INTRINSIC})
            gen = path_under(folder, f"s{seed_runs[0][0]}", "generation.json")
            summary = read_json(gen) if gen.is_file() else {}
            row.update({m: summary.get(m, float("nan")) for m in GENERATION})
            per_lang.append(row)
        mean = _mean_row(method, per_lang)
        per_seed = [
            float(pd.concat([runs[method][lang][i][2] for lang in langs])["correct"].mean())
            for i in range(len(runs[method][langs[0]]))
        ]
        mean.update(_accuracy_fields(records[method], per_seed))
        mean["group"] = group_of.get(method, float("nan"))
        rows += per_lang + [mean]
    df = pd.DataFrame(rows, columns=COLUMNS)
    df = _add_comparisons(df, report["comparisons"], [a for a in params.compare.against if a in records])
    controls = report["controls"]
    ranked = controls is None or controls["separated"]
    score = df[df["lang"] == "all"].set_index("method")["expert_pref_acc"]
    df["_role"] = df["role"].map(ROLE_ORDER).fillna(2)
    df["_rank"] = df["method"].map(-score.fillna(-np.inf)) if ranked else 0.0
    df["_ctrl"] = (df["role"] == "control").astype(int)
    df["_all"] = df["lang"] == "all"
    keys = ["_ctrl", "_rank", "method", "_all", "lang"] if ranked else ["_role", "method", "_all", "lang"]
    df = df.sort_values(keys, kind="stable").drop(columns=["_role", "_rank", "_ctrl", "_all"]).reset_index(drop=True)
    # plain lists and dicts (pandas compares attrs when it combines frames)
    df.attrs["report"] = {**report, "comparisons": report["comparisons"].to_dict("records")}
    return df


def _add_comparisons(df: Any, comparisons: Any, against: Sequence[str]) -> Any:
    """The ``<stat>_vs_<against>`` columns from the long comparison table (scope ``all`` on the ``all`` rows, the
    language on the language rows)."""
    cols = compare_columns(against)
    for c in cols:
        df[c] = float("nan")
    if comparisons is None or not len(comparisons):
        return df
    index = {(r["method"], r["against"], r["scope"]): r for r in comparisons.to_dict("records")}
    for i, row in df.iterrows():
        for a in against:
            hit = index.get((row["method"], a, row["lang"]))
            if hit is not None:
                for c in COMPARE:
                    df.at[i, f"{c}_vs_{a}"] = hit[c]
    return df


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "–" if _isnan(x) or x == "" else format(float(x), spec)


def _delta(row: Any, against: str) -> tuple[str, str]:
    """``+0.012 [-0.020, +0.045]`` and the Holm-adjusted p (bold when below alpha is marked by the caller)."""
    d = row.get(f"d_acc_vs_{against}")
    if _isnan(d):
        return "", ""
    lo, hi, p = (row.get(f"{c}_vs_{against}") for c in ("d_acc_lo", "d_acc_hi", "p_acc_holm"))
    return f"{float(d):+.3f} [{float(lo):+.3f}, {float(hi):+.3f}]", _fmt(p, ".3g")


def controls_sentence(controls: dict[str, Any] | None) -> str:
    """The leaderboard's verdict on its own metric, in words, from the control comparison."""
    if controls is None:
        return "No controls on this board (`oracle_revised`, `oracle_raw`): nothing shows the metric can rank methods."
    stat = (
        f"`oracle_revised` − `oracle_raw` = {controls['d_acc']:+.3f} accuracy "
        f"(95% CI [{controls['d_acc_lo']:+.3f}, {controls['d_acc_hi']:+.3f}], sign test p = {controls['p_acc']:.3g}, "
        f"n = {controls['n']} held-out pairs)"
    )
    if controls["separated"]:
        return (
            f"The controls separate: {stat}. Methods are ranked by accuracy; a row's group lists the methods the "
            "paired tests cannot tell from the group's leader."
        )
    return (
        f"**This profile's metric cannot rank methods:** training on expert-revised data only and on raw machine "
        f"translations only does not change the metric distinguishably ({stat}). Rows are listed by role and name, "
        "not ranked; the differences below are reported, not a ranking."
    )


def _pool_sentence(mean: Any) -> str:
    """Which frozen pool the rows were trained on, and what the tiers mean (empty for a board without a pool)."""
    hashes = {str(h) for h in mean["pool_hash"] if str(h) not in ("", "nan")}
    if not hashes:
        return ""
    return (
        f"Every row was trained on the frozen pool `{hashes.pop()[:12]}` (its manifest: `mdaq submit pool`). `tier`: "
        "`builtin` = a registered method; `verified` = a submission whose ids the pipeline regenerated from its "
        "card's selector; `community` = a submission of ids only (`docs/submitting.md`); `sub.<name>` rows are "
        "submissions. "
        "`selection s` = the selection's wall time in seconds from the method card (features not counted). "
    )


def to_markdown(df) -> str:
    """The README view: one row per method (all languages), accuracy per language, paired differences with 95%
    intervals and Holm-adjusted p-values against each method of ``compare.against``, and the controls' verdict."""
    report = df.attrs.get("report", {})
    against = [c.split("_vs_", 1)[1] for c in df.columns if c.startswith("d_acc_vs_")]
    langs = [x for x in dict.fromkeys(df["lang"]) if x != "all"]
    acc = df.pivot(index="method", columns="lang", values="expert_pref_acc")
    mean = df[df["lang"] == "all"].set_index("method")
    judged = [c for c in JUDGE if c in mean and mean[c].notna().any()]
    cols = ["role", "tier", *langs, "all", "seed SD"]
    cols += [h for a in against for h in (f"Δ vs {a} [95% CI]", "p (Holm)")]
    cols += ["NLL ± SE", "share revised", "steps", "cut", "coverage", "group", "selection s"]
    cols += [c.replace("win_rate_", "win % ") for c in judged]
    head = "| method | " + " | ".join(cols) + " |\n|---|---|" + "---:|" * (len(cols) - 1) + "\n"
    body = ""
    for method in mean.index:
        r = mean.loc[method]
        cells = [str(r["role"]), str(r["tier"]), *(_fmt(acc.loc[method, lang]) for lang in langs)]
        cells += [f"{_fmt(r['expert_pref_acc'])} ± {_fmt(r['expert_pref_acc_se'])}", _fmt(r["acc_seed_sd"])]
        for a in against:
            d, p = _delta(r, a) if method != a else ("", "")
            sig = p and float(p) < report.get("alpha", 0.05)
            cells += [f"**{d}**" if sig else d, p]
        cells += [f"{_fmt(r['ref_nll'])} ± {_fmt(r['ref_nll_se'])}", _fmt(r["share_revised"])]
        cells += [_fmt(r["optimizer_steps"], ".1f"), _fmt(r["share_truncated_train"], ".2f")]
        cells += [_fmt(r["cluster_coverage"]), _fmt(r["group"], ".0f"), _fmt(r["selection_s"], ".3g")]
        cells += [_fmt(r[c], ".1f") for c in judged]
        body += f"| {method} | " + " | ".join(cells) + " |\n"
    note = "\n" + controls_sentence(report.get("controls")) + "\n\n" + _pool_sentence(mean)
    cut = mean["truncated_heldout"].dropna() if "truncated_heldout" in mean else []
    if len(cut):
        share = float(cut.iloc[0])
        note += f"Held-out pairs whose revised response was truncated at `evaluate.max_seq_len`: {share:.1%}. "
    note += (
        "Expert-preference accuracy on held-out MIDB pairs (higher is better): per language and over all pairs "
        "(`all` ± SE over items), averaged over the training seeds (`seed SD`: spread of the per-seed accuracies). "
        "`Δ vs X` = paired difference in accuracy against method X on the same pairs, 95% paired bootstrap interval "
        "(items resampled within language), exact sign-test (McNemar) p-value on the per-pair seed-averaged "
        "correctness, Holm-adjusted over the rows of that column; bold = significant. `base` = the un-tuned model; "
        "`oracle_revised` / `oracle_raw` are controls that read the label (revised-only / raw-only training sets). "
        "`NLL` = per-token NLL of the revised responses (ratio SE); `share revised` = share of expert-revised samples "
        "in the training selection; `steps` = optimizer steps (per language, mean over seeds; equal epochs, so more "
        "data also means more steps); `cut` = share of training samples whose response was truncated at "
        "`train.max_seq_len`; `coverage` = share of an independent text partition's clusters the selection touches. "
        "Paired margins and NLL differences: `results/comparisons.csv`."
    )
    if judged:
        ids = ", ".join(sorted({str(v) for v in mean["judge_id"] if str(v) not in ("", "nan")}))
        note += " `win %` = LLM-judge win rate (percent; ties ½; both answer orders) against the reference method"
        note += f" `judge.reference`, judge {ids}."
    else:
        note += " No LLM judge was configured, so there are no win rates (`judge.backend: none`)."
    return head + body + note + "\n"


def _num(x: Any) -> float:
    return float("nan") if _isnan(x) or x == "" else float(x)


def to_long(df) -> Any:
    """The leaderboard in long format: one row per (method, language, metric) with value, SE, 95% interval, ``n``,
    tier and provenance (pool hash, params hash, git sha, judge id, prompt version, date). Metrics that were not
    computed (win rates without a judge) have no row.

    Intervals: ``expert_pref_acc`` ± 1.96 SE (binomial, clipped to [0, 1]); win rates: the judge stage's bootstrap
    interval per language and a normal interval for the ``all`` macro-average; descriptive metrics have none.
    """
    import pandas as pd

    rows = []
    for r in df.to_dict("records"):
        keys = ("status", "tier", "pool_hash", "params_sha", "git_sha", "judge_id", "prompt_version", "date")
        base = {k: r.get(k) for k in keys}
        for m in LONG_METRICS:
            value = _num(r.get(m))
            if math.isnan(value):
                continue
            se = lo = hi = float("nan")
            n = r.get("n_selected") if m in ("share_revised", *INTRINSIC) else r.get("n")
            if m == "expert_pref_acc":
                se = _num(r.get("expert_pref_acc_se"))
                lo, hi = max(0.0, value - Z95 * se), min(1.0, value + Z95 * se)
            elif m == "ref_nll":
                se = _num(r.get("ref_nll_se"))
                lo, hi = value - Z95 * se, value + Z95 * se
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
    language), ``leaderboard.md``, ``comparisons.csv`` (the paired comparisons, :func:`paired_report`),
    ``metrics.json`` (the `lang=all` rows and the controls' verdict) and, when given, ``leaderboard.html``, each
    atomically."""
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
    report = df.attrs.get("report", {})
    if "comparisons" in report:
        import pandas as pd

        with atomic_path(out_dir / "comparisons.csv") as tmp:
            pd.DataFrame(report["comparisons"]).to_csv(tmp, index=False, float_format="%.6g")
    keys = ("expert_pref_acc", "expert_pref_acc_se", "acc_seed_sd", "ref_nll", "ref_nll_se", "n")
    summary: dict[str, Any] = {
        r["method"]: {k: (None if _isnan(r[k]) else r[k]) for k in keys}
        for r in df[df["lang"] == "all"].to_dict("records")
    }
    controls = report.get("controls")
    summary["_controls"] = None if controls is None else {k: controls[k] for k in ("d_acc", "p_acc", "separated")}
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
