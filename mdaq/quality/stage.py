"""The ``qsm_eval`` stage in a few calls: the scorers, every table, the files; and the JSON of ``mdaq qsm eval``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mdaq.config import QSMConfig
from mdaq.quality.compare import paired_tests
from mdaq.quality.evaluate import (
    STRATA,
    ScoreFn,
    by_lang_table,
    length_scorer,
    random_scorer,
    score_table,
    strata_table,
    summarize,
)
from mdaq.quality.surface import SurfaceBaseline

BASELINES = ("untrained", "length", "surface", "random")  # beside "qsm", in every table
TABLES = {  # table name -> file under the stage's out_dir
    "by_lang": "qsm_by_lang.csv",
    "summary": "qsm_summary.csv",
    "strata": "qsm_strata.csv",
    "paired": "qsm_paired.csv",
}


def stage_scorers(
    model_dir: str | Path, encoder: str | Path, cfg: QSMConfig, train_rows: Sequence[dict], seed: int
) -> dict[str, ScoreFn]:
    """The QSM and its baselines: the untrained encoder (same score function and precision as the QSM), response
    length, the surface baseline trained on the QSM's own training pairs, and a seeded random score."""
    from mdaq.quality.model import QualityModel

    qsm = QualityModel.load(model_dir, device=cfg.device)
    untrained = QualityModel(
        encoder, kind="triplet", pooling=cfg.pooling, max_len=cfg.max_len, device=cfg.device, precision=cfg.precision
    )
    return {
        "qsm": qsm.score,
        "untrained": untrained.score,
        "length": length_scorer,
        "surface": SurfaceBaseline(seed=seed).fit(train_rows).score,
        "random": random_scorer(seed),
    }


def evaluate_all(
    scorers: dict[str, ScoreFn],
    rows_by_lang: dict[str, Sequence[dict]],
    unseen: Sequence[str] = (),
    *,
    seed: int = 0,
    groups: Sequence[str] = ("seen", "unseen", "all"),
) -> dict[str, pd.DataFrame]:
    """Every table of the evaluation, from one scoring pass: ``pairs`` (per scorer and pair), ``by_lang``,
    ``strata``, ``summary`` and, when ``qsm`` is among the scorers, ``paired`` (QSM against ``length`` and
    ``surface``, those of them that are present)."""
    pairs = score_table(scorers, rows_by_lang, unseen)
    tables = {
        "pairs": pairs,
        "by_lang": by_lang_table(pairs, seed=seed),
        "strata": strata_table(pairs, seed=seed),
        "summary": summarize(pairs, groups=groups, seed=seed),
    }
    against = [b for b in ("length", "surface") if b in scorers]
    if "qsm" in scorers and against:
        tables["paired"] = paired_tests(pairs, "qsm", against, groups=groups, seed=seed)
    return tables


def metrics(summary: pd.DataFrame) -> dict[str, float]:
    """``<scorer>_<group>`` (all pairs) and ``<scorer>_<group>_<stratum>``: macro accuracies for ``metrics.json``."""
    out = {}
    for r in summary.to_dict("records"):
        key = f"{r['scorer']}_{r['group']}" + ("" if r["stratum"] == "all" else f"_{r['stratum']}")
        out[key] = round(float(r["pairwise_accuracy"]), 6) if np.isfinite(r["pairwise_accuracy"]) else None
    return out


def write_results(tables: dict[str, pd.DataFrame], out_dir: str | Path) -> None:
    """Write the tables of :data:`TABLES` and ``metrics.json`` atomically."""
    from mdaq.io import atomic_path, write_json

    out_dir = Path(out_dir)
    for name, file in TABLES.items():
        with atomic_path(out_dir / file) as tmp:
            tables[name].to_csv(tmp, index=False, float_format="%.6g")
    write_json(out_dir / "metrics.json", metrics(tables["summary"]))


def pairs_report(scorers: dict[str, ScoreFn], rows: Sequence[dict], *, seed: int = 0) -> dict[str, Any]:
    """What ``mdaq qsm eval`` prints for one pairs file: the ``qsm`` scorer's accuracy (``pairwise_accuracy``,
    ``ci_low``, ``ci_high``, ``n``), ``tau_source_difficulty`` and ``strata``; each other scorer the same under
    ``baselines``; and ``paired``, the tests of the QSM against ``length`` and ``surface`` (group ``all``)."""
    tables = evaluate_all(scorers, {"pairs": rows}, seed=seed, groups=("all",))
    per = {name: _scorer_report(tables, name) for name in scorers}
    out = per.pop("qsm")
    out["baselines"] = per
    paired = tables.get("paired")
    out["paired"] = [] if paired is None else paired.drop(columns=["reference", "group"]).to_dict("records")
    return _plain(out)


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars as Python numbers, NaN as None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    return value


def _scorer_report(tables: dict[str, pd.DataFrame], scorer: str) -> dict[str, Any]:
    rows = tables["strata"][tables["strata"]["scorer"] == scorer].set_index("stratum")
    keys = ("pairwise_accuracy", "ci_low", "ci_high", "n")
    out = {k: rows.loc["all", k] for k in keys}
    out["tau_source_difficulty"] = float(tables["by_lang"].set_index("scorer").loc[scorer, "tau_source_difficulty"])
    out["strata"] = {s: {k: rows.loc[s, k] for k in keys} for s in STRATA if s != "all"}
    return out
