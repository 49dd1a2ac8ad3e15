"""Compare QSM variants on the same held-out pairs (issue 17): pooled accuracy per language group and length
stratum, paired tests of every variant against the paper-faithful reference, the rule that picks the project's
default scorer, and the Markdown table ``scripts/qsm_sweep.py`` writes to ``docs/qsm-variants.md``."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mdaq.config import QSMConfig, params_from_dict
from mdaq.quality.compare import paired_tests
from mdaq.stats import holm

REFERENCE = "paper"  # the paper-faithful triplet bi-encoder, every variant's reference
# qsm keys a variant starts from: the paper-faithful scorer, whatever the profile's default is now, so the table
# regenerates the same after the default changes
PAPER_FAITHFUL: dict[str, Any] = {
    "kind": "triplet",
    "normalize": False,
    "length_balance": 0.0,
    "val_share": 0.0,
    "epochs": 1,
}
CELLS = ("all", "seen", "unseen", "shorter", "matched", "longer", "rev_not_longer")  # columns of the accuracy table
TESTED = ("matched", "all")  # strata of the paired tests against the reference (Holm over variants x these)
ALPHA = 0.05
MAX_OVERALL_LOSS = 0.01  # "without losing overall accuracy": at most 1 point lower, and not significantly lower


def variant_qsm(profile: dict[str, Any], overrides: dict[str, Any], where: str = "<variant>") -> QSMConfig:
    """The ``qsm`` section of a variant: the profile's, with :data:`PAPER_FAITHFUL` and then ``overrides`` on top,
    validated like a params file (unknown keys, wrong types, ranges: :class:`~mdaq.errors.DataError`).

    Raises
    ------
    ValueError
        When ``overrides`` changes ``unseen_langs``: every variant must be read on the same seen / unseen split.
    """
    if "unseen_langs" in overrides:
        raise ValueError(f"{where}: a variant cannot change qsm.unseen_langs (the seen/unseen split is shared)")
    data = copy.deepcopy(profile)
    data["qsm"] = {**data["qsm"], **PAPER_FAITHFUL, **overrides}
    return params_from_dict(data, where).qsm


def pooled_accuracy(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per scorer (first-seen order): ``acc_<cell>`` and ``n_<cell>`` for every :data:`CELLS` entry, the
    share of the cell's pairs scored correctly (ties half), pooled over languages; ``acc_macro``, the mean of the
    languages' accuracies on all pairs (the issue's goals are stated as this mean)."""
    rows = []
    for scorer, sub in pairs.groupby("scorer", sort=False):
        row: dict[str, Any] = {"scorer": scorer}
        for cell in CELLS:
            keep = sub["split"].eq(cell) if cell in ("seen", "unseen") else sub[cell]
            values = sub.loc[keep, "correct"].to_numpy(float)
            row[f"n_{cell}"] = len(values)
            row[f"acc_{cell}"] = float(values.mean()) if len(values) else float("nan")
        row["acc_macro"] = float(sub.groupby("lang")["correct"].mean().mean())
        rows.append(row)
    return pd.DataFrame(rows)


def tests_against_reference(
    pairs: pd.DataFrame, variants: Sequence[str], reference: str = REFERENCE, *, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Paired tests (:func:`mdaq.quality.compare.paired_tests`, all languages pooled) of each variant against
    ``reference`` on the :data:`TESTED` strata; ``p_holm`` is Holm's adjustment over all these rows."""
    parts = []
    for name in variants:
        if name == reference:
            continue
        table = paired_tests(pairs, name, [reference], groups=("all",), n_boot=n_boot, seed=seed)
        parts.append(table[table["stratum"].isin(TESTED)].drop(columns="p_holm"))
    if not parts:
        return pd.DataFrame(columns=["reference", "baseline", "group", "stratum", "n", "d_acc", "p_sign", "p_holm"])
    out = pd.concat(parts, ignore_index=True)
    out["p_holm"] = holm(out["p_sign"].to_numpy(dtype=float))
    return out


def decide(acc: pd.DataFrame, tests: pd.DataFrame, reference: str = REFERENCE) -> dict[str, Any]:
    """The issue's rule: the default QSM is the variant with the best length-matched accuracy *without losing
    overall accuracy*; a variant qualifies only on evidence.

    A variant qualifies when (1) its matched-stratum accuracy is higher than the reference's with a Holm-adjusted
    sign-test p < :data:`ALPHA`, and (2) its overall accuracy is at most :data:`MAX_OVERALL_LOSS` lower and not
    significantly lower (Holm p < :data:`ALPHA` with a negative difference). Among those that qualify, the highest
    matched accuracy wins; with none, the reference stays.

    Returns
    -------
    dict
        ``winner`` (a variant name, or ``reference`` when none qualifies) and ``verdicts``, one line per variant.
    """
    by_name = acc.set_index("scorer")
    verdicts, qualified = {}, []
    for name, sub in tests.groupby("reference", sort=False):
        cell = sub.set_index("stratum")
        matched, overall = cell.loc["matched"], cell.loc["all"]
        better = matched["d_acc"] > 0 and matched["p_holm"] < ALPHA
        keeps = overall["d_acc"] >= -MAX_OVERALL_LOSS and not (overall["d_acc"] < 0 and overall["p_holm"] < ALPHA)
        m_text = f"matched {matched['d_acc']:+.3f} (Holm p = {_p(matched['p_holm'])})"
        o_text = f"overall {overall['d_acc']:+.3f} (Holm p = {_p(overall['p_holm'])})"
        if better and keeps:
            qualified.append(name)
            verdicts[name] = f"qualifies: {m_text}, {o_text}"
        else:
            why = [] if better else ["no significant gain on matched pairs"]
            why += [] if keeps else ["loses overall accuracy"]
            verdicts[name] = f"does not qualify ({'; '.join(why)}): {m_text}, {o_text}"
    winner = max(qualified, key=lambda n: by_name.loc[n, "acc_matched"], default=reference)
    return {"winner": winner, "verdicts": verdicts}


def _p(p: float) -> str:
    return "nan" if not np.isfinite(p) else (f"{p:.2g}" if p < 0.001 else f"{p:.3f}")


def _acc(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.3f}"


def render_markdown(
    acc: pd.DataFrame,
    tests: pd.DataFrame,
    decision: dict[str, Any],
    variants: dict[str, dict[str, Any]],
    meta: dict[str, Any],
) -> str:
    """``docs/qsm-variants.md``: provenance, the accuracy table (variants, then the surface and length baselines),
    the paired tests against the reference, the decision.

    ``variants`` maps a name to its ``overrides``, ``train_s``, ``score_s`` and ``note`` (training facts);
    ``meta`` holds ``command``, ``date``, ``git_sha``, ``cpu_model``, ``torch_threads``, ``torch_version``,
    ``encoder``, ``qsm`` (the reference's settings), ``n_train``, ``langs_seen``, ``langs_unseen``, ``eval_max``.
    """
    ref = meta.get("reference", REFERENCE)
    lines = [
        "# QSM variants on every held-out pair (issue 17)",
        "",
        "GENERATED by `scripts/qsm_sweep.py`; do not edit. Regenerate with:",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"- run: {meta['date']}, git `{meta['git_sha']}`, {meta['cpu_model']}, {meta['torch_threads']} torch threads, "
        f"torch {meta['torch_version']}, {meta['precision']}; `train s` / `score s`: wall seconds per variant",
        f"- encoder `{meta['encoder']}`; every variant starts from the paper-faithful settings "
        f"({_settings(meta['qsm'])}) and changes only what its row says",
        f"- training: {meta['n_train']} pairs from the seen languages ({', '.join(meta['langs_seen'])}); unseen, "
        f"left out of training: {', '.join(meta['langs_unseen']) or 'none'}",
        f"- held-out: {_held(meta['eval_max'])} (the prepare split's held-out block, no pair used in training), "
        f"{int(acc['n_all'].iloc[0])} pairs in {meta['n_langs']} languages",
        "",
        "## Accuracy",
        "",
        "Share of held-out pairs where the scorer ranks the expert revision above the raw response (ties half), "
        "pooled over languages; `macro` is the mean of the languages' accuracies. Strata by length ratio "
        "revised / raw in characters: shorter < 0.8 <= matched <= 1.25 < longer; `not longer` (<= 1) overlaps "
        "them. `surface` is the trained surface-feature baseline (mdaq/quality/surface.py, fitted on the "
        "reference's training pairs), `length` the response length.",
        "",
        _accuracy_table(acc, variants),
        "",
        f"## Paired tests against `{ref}` (all languages pooled)",
        "",
        "d = accuracy of the variant minus the reference's on the same pairs, 95% paired bootstrap interval "
        "(pairs resampled within languages), exact sign test on the per-pair differences (McNemar), Holm over "
        "every row of this table.",
        "",
        _tests_table(tests),
        "",
        "## Decision",
        "",
        f"Rule (issue 17): the default QSM is the variant with the best length-matched accuracy without losing "
        f"overall accuracy. A variant qualifies when its matched accuracy beats `{ref}` with Holm p < {ALPHA} "
        f"and its overall accuracy is at most {MAX_OVERALL_LOSS} lower and not significantly lower; the "
        "qualifying variant with the highest matched accuracy wins. Decided on the pooled held-out pairs of all "
        "languages.",
        "",
        *[f"- `{name}`: {text}" for name, text in decision["verdicts"].items()],
        "",
        _verdict(decision, ref, acc),
        "",
        _current(meta.get("default_is"), decision["winner"]),
        "",
    ]
    return "\n".join(lines)


def _settings(qsm: dict[str, Any]) -> str:
    keys = ("kind", "normalize", "margin", "lr", "epochs", "batch_size", "max_len", "max_pairs_per_lang")
    return ", ".join(f"{k} {qsm[k]}" for k in keys if k in qsm)


def _held(eval_max: int) -> str:
    return "all pairs of every language" if eval_max == 0 else f"at most {eval_max} pairs per language"


def _accuracy_table(acc: pd.DataFrame, variants: dict[str, dict[str, Any]]) -> str:
    heads = ["scorer", "changes", "all", "seen", "unseen", "macro", "shorter", "matched", "longer", "not longer"]
    heads += ["train s", "score s", "training"]
    first = acc.iloc[0]
    n_row = ["*n pairs*", "", *[str(int(first[f"n_{c}"])) for c in CELLS[:3]], ""]
    n_row += [str(int(first[f"n_{c}"])) for c in CELLS[3:]] + ["", "", ""]
    out = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads), "| " + " | ".join(n_row) + " |"]
    for row in acc.to_dict("records"):
        info = variants.get(row["scorer"], {})
        changes = ", ".join(f"{k}={v}" for k, v in info.get("overrides", {}).items()) if info else "baseline"
        cells = [f"`{row['scorer']}`", changes or "(paper-faithful)"]
        cells += [_acc(row[f"acc_{c}"]) for c in CELLS[:3]] + [_acc(row["acc_macro"])]
        cells += [_acc(row[f"acc_{c}"]) for c in CELLS[3:]]
        cells += [_secs(info.get("train_s")), _secs(info.get("score_s")), info.get("note", "")]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def _tests_table(tests: pd.DataFrame) -> str:
    if tests.empty:
        return "(no variant besides the reference)"
    heads = ["variant", "stratum", "n", "variant acc", "reference acc", "d", "95% CI", "variant / ref. better"]
    heads += ["p (sign)", "p (Holm)"]
    out = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for r in tests.to_dict("records"):
        cells = [f"`{r['reference']}`", r["stratum"], str(int(r["n"])), _acc(r["acc_reference"])]
        cells += [_acc(r["acc_baseline"]), f"{r['d_acc']:+.3f}", f"[{r['d_lo']:+.3f}, {r['d_hi']:+.3f}]"]
        cells += [f"{int(r['n_reference_better'])} / {int(r['n_baseline_better'])}", _p(r["p_sign"]), _p(r["p_holm"])]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _verdict(decision: dict[str, Any], ref: str, acc: pd.DataFrame) -> str:
    row = acc.set_index("scorer")
    if decision["winner"] == ref:
        return (
            f"**Result: no variant qualifies, so the paper-faithful `{ref}` scorer stays the project's default QSM** "
            f"(matched {_acc(row.loc[ref, 'acc_matched'])}, overall {_acc(row.loc[ref, 'acc_all'])}). A null result: "
            "none of the ideas above is shown to read quality beyond length better than the paper's scorer here."
        )
    w = decision["winner"]
    return (
        f"**Result: `{w}` qualifies with the best length-matched accuracy ({_acc(row.loc[w, 'acc_matched'])} "
        f"against {_acc(row.loc[ref, 'acc_matched'])}; overall {_acc(row.loc[w, 'acc_all'])} against "
        f"{_acc(row.loc[ref, 'acc_all'])}), so by the rule it is the project's default QSM**; the paper-faithful "
        f"scorer stays available as the `{ref}` settings above."
    )


def _current(default_is: str | None, winner: str) -> str:
    """Whether the profile the sweep read (``--params``) trains the winner: the table says so rather than assume."""
    if default_is == winner:
        return f"The profile this sweep read trains `{winner}`'s settings: it follows the decision."
    now = f"`{default_is}`'s settings" if default_is else "settings that are none of these variants"
    return f"**The profile this sweep read trains {now}, not `{winner}`'s: it does not follow the decision yet.**"


def write_markdown(path: str | Path, text: str) -> None:
    """Write the table atomically (:func:`mdaq.io.atomic_path`)."""
    from mdaq.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
