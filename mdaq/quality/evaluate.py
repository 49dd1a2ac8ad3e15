"""Evaluate quality scorers on revision pairs: pairwise accuracy with bootstrap CIs, Kendall's tau, baselines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.quality.model import anchor_text

# A scorer maps (instructions, responses) to scores, higher = better.
ScoreFn = Callable[[Sequence[str], Sequence[str]], np.ndarray]


def pairwise_accuracy(
    revised: np.ndarray, raw: np.ndarray, *, n_boot: int = 1000, random_state: int = 0
) -> dict[str, float]:
    """Share of pairs where the revised response scores higher (ties count half), with a 95% bootstrap CI.

    Returns
    -------
    dict
        ``pairwise_accuracy``, ``ci_low``, ``ci_high``, ``n``.
    """
    revised, raw = np.asarray(revised, float), np.asarray(raw, float)
    wins = (revised > raw) + 0.5 * (revised == raw)
    n = len(wins)
    if n == 0:
        return {"pairwise_accuracy": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    rng = np.random.default_rng(random_state)
    boots = wins[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {"pairwise_accuracy": float(wins.mean()), "ci_low": float(lo), "ci_high": float(hi), "n": int(n)}


def kendall_tau(gap: np.ndarray, distance: Sequence[int | None]) -> float:
    """Kendall's tau between the score gap (revised − raw) and the edit distance (pairs without one skipped)."""
    from scipy.stats import kendalltau

    keep = np.array([d is not None for d in distance])
    if keep.sum() < 3:
        return float("nan")
    tau = kendalltau(np.asarray(gap, float)[keep], np.array([d for d in distance if d is not None], float))
    return float(tau.statistic)


def pair_texts(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[str], list[str], list[Any]]:
    """Anchors, revised and raw responses, edit distances of revision rows.

    Accepts ``qsm_train`` rows (:class:`~mdaq.data.midb.RevisionPair` fields; anchor = revised instruction + input)
    and ``heldout`` rows (``instruction``/``input``/``chosen``/``rejected``).
    """
    if rows and "chosen" in rows[0]:
        anchors = [anchor_text(r["instruction"], r.get("input", "")) for r in rows]
        return anchors, [r["chosen"] for r in rows], [r["rejected"] for r in rows], [r.get("distance") for r in rows]
    anchors = [anchor_text(r["revised_instruction"], r["revised_input"]) for r in rows]
    revised, raw = [r["revised_response"] for r in rows], [r["raw_response"] for r in rows]
    return anchors, revised, raw, [r.get("distance") for r in rows]


def evaluate_pairs(score_fn: ScoreFn, rows: Sequence[dict[str, Any]], *, random_state: int = 0) -> dict[str, Any]:
    """Pairwise accuracy (+CI) and Kendall's tau of one scorer on revision rows."""
    anchors, revised, raw, dist = pair_texts(rows)
    scores = np.asarray(score_fn(anchors + anchors, revised + raw))  # one call: a QSM embeds each anchor once
    s_rev, s_raw = scores[: len(rows)], scores[len(rows) :]
    out = pairwise_accuracy(s_rev, s_raw, random_state=random_state)
    out["kendall_tau"] = kendall_tau(np.asarray(s_rev) - np.asarray(s_raw), dist)
    return out


def length_scorer(instructions: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    """Baseline: longer response = better (ranks the revision higher in ~83% of MIDB pairs)."""
    return np.array([len(r) for r in responses], dtype=float)


def random_scorer(random_state: int = 0) -> ScoreFn:
    """Baseline: a seeded random score per (instruction, response) text (expected accuracy 0.5)."""
    import hashlib

    def fn(instructions: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        keys = [
            hashlib.sha256(f"{random_state}\0{i}\0{r}".encode()).digest()[:8]
            for i, r in zip(instructions, responses, strict=True)
        ]
        return np.array([int.from_bytes(k, "little") / 2**64 for k in keys])

    return fn


def evaluate_scorers(
    scorers: dict[str, ScoreFn],
    rows_by_lang: dict[str, list[dict]],
    unseen: Sequence[str] = (),
    *,
    random_state: int = 0,
) -> list[dict[str, Any]]:
    """One result row per (scorer, language), each tagged ``seen``/``unseen`` by whether training used it."""
    table = []
    for name, fn in scorers.items():
        for lang in sorted(rows_by_lang):
            res = evaluate_pairs(fn, rows_by_lang[lang], random_state=random_state)
            table.append({"scorer": name, "lang": lang, "split": "unseen" if lang in unseen else "seen", **res})
    return table


def summarize(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Macro means per (scorer, seen/unseen) and per scorer over all languages."""
    out = []
    for scorer in dict.fromkeys(r["scorer"] for r in table):
        rows = [r for r in table if r["scorer"] == scorer]
        for group in ("seen", "unseen", "all"):
            sub = rows if group == "all" else [r for r in rows if r["split"] == group]
            if sub:
                out.append(
                    {
                        "scorer": scorer,
                        "group": group,
                        "n_langs": len(sub),
                        "pairwise_accuracy": float(np.mean([r["pairwise_accuracy"] for r in sub])),
                        "kendall_tau": float(np.nanmean([r["kendall_tau"] for r in sub])),
                    }
                )
    return out


def write_results(table: Any, summary: Any, out_dir: str | Path) -> None:
    """Write ``qsm_by_lang.csv``, ``qsm_summary.csv`` and ``metrics.json`` (summary accuracies) atomically."""
    from mdaq.io import atomic_path, write_json

    out_dir = Path(out_dir)
    for name, df in (("qsm_by_lang.csv", table), ("qsm_summary.csv", summary)):
        with atomic_path(out_dir / name) as tmp:
            df.to_csv(tmp, index=False, float_format="%.6g")
    metrics = {
        f"{r['scorer']}_{r['group']}": round(float(r["pairwise_accuracy"]), 6) for r in summary.to_dict("records")
    }
    write_json(out_dir / "metrics.json", metrics)
