"""Evaluate quality scorers on revision pairs: pairwise accuracy with bootstrap intervals, overall and per length
stratum, the rank correlation with MIDB's source-level ``Distance``, and the baselines that need no training.

A pair is *correct* for a scorer when it scores the expert revision above the raw machine translation (ties count
half). Response length alone gets most MIDB pairs right, because revisions are usually longer; the length strata
(:func:`length_strata`) show whether a scorer does more than that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mdaq.data.split import lang_rng
from mdaq.quality.model import anchor_text

# A scorer maps (instructions, responses) to scores, higher = better.
ScoreFn = Callable[[Sequence[str], Sequence[str]], np.ndarray]

# Length strata on ratio = len(revised) / len(raw) in characters: three that partition the pairs, the overlapping
# slice where the revision is not longer (a length scorer gets at most ties right there), and every pair.
STRATA = ("all", "shorter", "matched", "longer", "rev_not_longer")
SHORTER_BELOW = (4, 5)  # ratio < 4/5 = 0.8: the revision is shorter
LONGER_ABOVE = (5, 4)  # ratio > 5/4 = 1.25: the revision is longer; 0.8 <= ratio <= 1.25 is "matched"
GROUPS = ("seen", "unseen", "all")  # languages used in QSM training, left out of it, both
N_BOOT = 1000


def length_strata(revised: Sequence[str], raw: Sequence[str]) -> dict[str, np.ndarray]:
    """Boolean masks of :data:`STRATA` over pairs, from the responses' lengths in characters.

    Compared in integers (5·len(revised) < 4·len(raw) for ``shorter``, 4·len(revised) > 5·len(raw) for ``longer``),
    so a ratio of exactly 0.8 or 1.25 is ``matched`` and exactly 1.0 is ``matched`` and ``rev_not_longer``.
    """
    rev = np.fromiter((len(t) for t in revised), dtype=np.int64, count=len(revised))
    raw_len = np.fromiter((len(t) for t in raw), dtype=np.int64, count=len(raw))
    if rev.shape != raw_len.shape:
        raise ValueError(f"{len(rev)} revised but {len(raw_len)} raw responses")
    shorter = SHORTER_BELOW[1] * rev < SHORTER_BELOW[0] * raw_len
    longer = LONGER_ABOVE[1] * rev > LONGER_ABOVE[0] * raw_len
    return {
        "all": np.ones(len(rev), dtype=bool),
        "shorter": shorter,
        "matched": ~(shorter | longer),
        "longer": longer,
        "rev_not_longer": rev <= raw_len,
    }


def wins(revised: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Per pair: 1 when the revision scores higher, 0.5 on a tie, 0 otherwise."""
    revised, raw = np.asarray(revised, float), np.asarray(raw, float)
    return (revised > raw) + 0.5 * (revised == raw)


def bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``values``; empty input gives an empty array."""
    values = np.asarray(values, float)
    if values.size == 0:
        return np.zeros(0)
    return values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)


def pairwise_accuracy(
    revised: np.ndarray, raw: np.ndarray, *, n_boot: int = N_BOOT, random_state: int = 0
) -> dict[str, float]:
    """Share of pairs where the revised response scores higher (ties count half), with a 95% bootstrap CI.

    Returns
    -------
    dict
        ``pairwise_accuracy``, ``ci_low``, ``ci_high``, ``n`` (NaN accuracy and interval for no pairs).
    """
    w = wins(revised, raw)
    return _accuracy(w, bootstrap_means(w, n_boot, np.random.default_rng(random_state)))


def _accuracy(w: np.ndarray, boots: np.ndarray) -> dict[str, Any]:
    if len(w) == 0:
        return {"pairwise_accuracy": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {"pairwise_accuracy": float(np.mean(w)), "ci_low": float(lo), "ci_high": float(hi), "n": int(len(w))}


def tau_source_difficulty(gap: np.ndarray, distance: Sequence[int | None]) -> float:
    """Kendall's tau between the score gap (revised − raw) and MIDB's ``Distance`` (pairs without one skipped).

    ``Distance`` is one number per *source* item, identical in all 11 MIDB languages at aligned indices (checked on
    the pinned release), so it measures how much an item needed revising at source level, not how far this
    language's revision is from its raw translation: a correlation with a source-level difficulty.
    """
    from scipy.stats import kendalltau

    keep = np.array([d is not None for d in distance], dtype=bool)
    if keep.sum() < 3:
        return float("nan")
    tau = kendalltau(np.asarray(gap, float)[keep], np.array([d for d in distance if d is not None], float))
    return float(tau.statistic)


def pair_texts(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[str], list[str], list[Any]]:
    """Anchors, revised and raw responses, ``Distance`` values of revision rows.

    Accepts ``qsm_train`` rows (:class:`~mdaq.data.midb.RevisionPair` fields; anchor = revised instruction + input)
    and ``heldout`` rows (``instruction``/``input``/``chosen``/``rejected``).
    """
    if rows and "chosen" in rows[0]:
        anchors = [anchor_text(r["instruction"], r.get("input", "")) for r in rows]
        return anchors, [r["chosen"] for r in rows], [r["rejected"] for r in rows], [r.get("distance") for r in rows]
    anchors = [anchor_text(r["revised_instruction"], r["revised_input"]) for r in rows]
    revised, raw = [r["revised_response"] for r in rows], [r["raw_response"] for r in rows]
    return anchors, revised, raw, [r.get("distance") for r in rows]


def pair_scores(score_fn: ScoreFn, anchors: list[str], revised: list[str], raw: list[str]) -> tuple[Any, Any]:
    """Scores of the revised and the raw responses, in one call (a QSM embeds each anchor once)."""
    scores = np.asarray(score_fn(anchors + anchors, revised + raw), dtype=float)
    if scores.shape != (2 * len(anchors),):
        raise ValueError(f"a scorer returned shape {scores.shape} for {2 * len(anchors)} texts")
    return scores[: len(anchors)], scores[len(anchors) :]


def evaluate_pairs(score_fn: ScoreFn, rows: Sequence[dict[str, Any]], *, random_state: int = 0) -> dict[str, Any]:
    """Pairwise accuracy (+CI), ``tau_source_difficulty`` and accuracy per length stratum of one scorer."""
    anchors, revised, raw, dist = pair_texts(rows)
    s_rev, s_raw = pair_scores(score_fn, anchors, revised, raw)
    out = pairwise_accuracy(s_rev, s_raw, random_state=random_state)
    out["tau_source_difficulty"] = tau_source_difficulty(s_rev - s_raw, dist)
    masks = length_strata(revised, raw)
    out["strata"] = {
        s: pairwise_accuracy(s_rev[m], s_raw[m], random_state=random_state) for s, m in masks.items() if s != "all"
    }
    return out


def length_scorer(instructions: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    """Baseline: longer response = better (ranks the revision higher in ~83% of MIDB pairs)."""
    return np.array([len(r) for r in responses], dtype=float)


def random_scorer(random_state: int = 0) -> ScoreFn:
    """Baseline: a seeded random score per (instruction, response) text (expected accuracy 0.5)."""

    def fn(instructions: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        keys = [
            hashlib.sha256(f"{random_state}\0{i}\0{r}".encode()).digest()[:8]
            for i, r in zip(instructions, responses, strict=True)
        ]
        return np.array([int.from_bytes(k, "little") / 2**64 for k in keys])

    return fn


# ---- the per-pair table and what is computed from it ---------------------------------------------------------------


def score_table(
    scorers: dict[str, ScoreFn], rows_by_lang: dict[str, Sequence[dict]], unseen: Iterable[str] = ()
) -> pd.DataFrame:
    """One row per (scorer, language, pair): ``scorer, lang, split, item, ratio, <stratum masks>, gap, correct,
    distance``; ``item`` is the pair's position in its language's rows, ``split`` is ``unseen`` for the languages
    left out of QSM training, else ``seen``."""
    unseen = set(unseen)
    parts = []
    for lang in sorted(rows_by_lang):
        anchors, revised, raw, dist = pair_texts(rows_by_lang[lang])
        base = pd.DataFrame({"lang": lang, "split": "unseen" if lang in unseen else "seen", "item": range(len(raw))})
        base["ratio"] = [len(a) / max(1, len(b)) for a, b in zip(revised, raw, strict=True)]
        for stratum, mask in length_strata(revised, raw).items():
            base[stratum] = mask
        base["distance"] = pd.array(dist, dtype="Int64")
        for name, fn in scorers.items():
            s_rev, s_raw = pair_scores(fn, anchors, revised, raw)
            parts.append(base.assign(scorer=name, gap=s_rev - s_raw, correct=wins(s_rev, s_raw)))
    columns = ["scorer", "lang", "split", "item", "ratio", *STRATA, "gap", "correct", "distance"]
    if not parts:
        raise ValueError("no held-out pairs to evaluate (empty rows_by_lang)")
    return pd.concat(parts, ignore_index=True)[columns]


def _cells(pairs: pd.DataFrame, n_boot: int, seed: int) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Per (scorer, lang, stratum): the pairs' correctness and its bootstrap means. Every scorer of a (language,
    stratum) gets the same resamples of pairs (the stream depends on seed, language and stratum only)."""
    out = {}
    for (scorer, lang), sub in pairs.groupby(["scorer", "lang"], sort=False):
        for stratum in STRATA:
            w = sub.loc[sub[stratum], "correct"].to_numpy()
            boots = bootstrap_means(w, n_boot, lang_rng(seed, str(lang), f"qsm-eval:{stratum}"))
            out[(str(scorer), str(lang), stratum)] = {"wins": w, "boots": boots, "split": sub["split"].iloc[0]}
    return out


def strata_table(pairs: pd.DataFrame, *, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Accuracy with a 95% bootstrap interval and ``n`` per (scorer, language, stratum)."""
    rows = [
        {
            "scorer": scorer,
            "lang": lang,
            "split": cell["split"],
            "stratum": stratum,
            **_accuracy(cell["wins"], cell["boots"]),
        }
        for (scorer, lang, stratum), cell in _cells(pairs, n_boot, seed).items()
    ]
    return pd.DataFrame(rows)


def _taus(pairs: pd.DataFrame) -> dict[tuple[str, str], float]:
    """``tau_source_difficulty`` per (scorer, language) on all pairs."""
    out = {}
    for (scorer, lang), sub in pairs.groupby(["scorer", "lang"], sort=False):
        dist = [None if pd.isna(d) else int(d) for d in sub["distance"]]
        out[(str(scorer), str(lang))] = tau_source_difficulty(sub["gap"].to_numpy(), dist)
    return out


def by_lang_table(pairs: pd.DataFrame, *, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Accuracy on all pairs per (scorer, language), with ``tau_source_difficulty``."""
    table = strata_table(pairs, n_boot=n_boot, seed=seed)
    table = table[table["stratum"] == "all"].drop(columns="stratum").reset_index(drop=True)
    tau = _taus(pairs)
    table["tau_source_difficulty"] = [tau[key] for key in zip(table["scorer"], table["lang"], strict=True)]
    return table


def summarize(
    pairs: pd.DataFrame, *, groups: Sequence[str] = GROUPS, n_boot: int = N_BOOT, seed: int = 0
) -> pd.DataFrame:
    """Macro means over languages per (scorer, group, stratum), with a 95% bootstrap interval.

    A language enters a stratum's mean when it has a pair in that stratum (``n_langs``; ``n`` counts pairs). The
    interval resamples pairs within each language and averages the languages' resampled accuracies.
    ``tau_source_difficulty`` is the mean over languages on all pairs (NaN in the other strata). A group without
    languages (no unseen language) has no rows.
    """
    cells, tau = _cells(pairs, n_boot, seed), _taus(pairs)
    rows = []
    for scorer in dict.fromkeys(pairs["scorer"]):
        for group in groups:
            langs = sorted({lang for (s, lang, _), c in cells.items() if s == scorer and _in(c["split"], group)})
            for stratum in STRATA if langs else ():
                row = {"scorer": scorer, "group": group, "stratum": stratum}
                row |= _macro([cells[(scorer, lang, stratum)] for lang in langs])
                row["tau_source_difficulty"] = _tau_mean([tau[(scorer, lang)] for lang in langs], stratum)
                rows.append(row)
    return pd.DataFrame(rows)


def _in(split: str, group: str) -> bool:
    return group == "all" or split == group


def _macro(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of the languages' accuracies and of their bootstrap means (languages without pairs left out)."""
    used = [c for c in cells if len(c["wins"])]
    out = {"n_langs": len(used), "n": int(sum(len(c["wins"]) for c in used))}
    if not used:
        return {**out, "pairwise_accuracy": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    lo, hi = np.quantile(np.mean([c["boots"] for c in used], axis=0), [0.025, 0.975])
    acc = float(np.mean([np.mean(c["wins"]) for c in used]))
    return {**out, "pairwise_accuracy": acc, "ci_low": float(lo), "ci_high": float(hi)}


def _tau_mean(values: list[float], stratum: str) -> float:
    v = np.array(values, dtype=float)
    return float(np.nanmean(v)) if stratum == "all" and np.isfinite(v).any() else float("nan")
