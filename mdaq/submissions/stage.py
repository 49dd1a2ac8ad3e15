"""The ``submission`` stage in one call: validate a submission against the frozen pool, decide its tier, and write
its selection where the ``run`` stage reads a built-in method's, so that both train and evaluate alike."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mdaq.config import Params
from mdaq.errors import DataError
from mdaq.io import atomic_dir, check_distinct, read_samples, write_json
from mdaq.names import path_under, submission_method
from mdaq.submissions.pool import check_current, read_frozen_pool
from mdaq.submissions.recipe import VERIFIED, check_tier, read_listed_card
from mdaq.submissions.validate import SELECTION, validate_submission

log = logging.getLogger(__name__)
RECORD = "submission.json"  # the stage's record, also kept in its selections folder (which it marks as mdaq's)
CARD_FIELDS = ("description", "authors", "paper", "code", "code_commit", "compute", "features")


def submitted_ids(folder: Path, langs: list[str]) -> dict[str, list[str]]:
    """``selection/<lang>.txt`` of a validated submission, one id per line, in the submitted order."""
    return {lang: (folder / SELECTION / f"{lang}.txt").read_text(encoding="utf-8").split() for lang in langs}


def run_submission_stage(
    name: str,
    params: Params,
    *,
    submissions_dir: str | Path,
    pools: str | Path,
    pool_dir: str | Path,
    features: str | Path,
    ifd: str | Path,
    out: str | Path,
    record_path: str | Path,
    root: str | Path = ".",
) -> dict[str, Any]:
    """Import ``submissions_dir/<name>``: the ``submission@<name>`` stage.

    1. Validate it against the profile's frozen pool (``<pools>/<profile>``, checked current): any problem stops the
       stage, listing them all, as ``mdaq submit validate`` does.
    2. Decide its tier (:func:`mdaq.submissions.recipe.check_tier`). A submission the profile plans to reuse a
       built-in run for (``params.reused_runs``) must come out ``verified``, else the stage stops.
    3. Write ``<out>/<lang>/s<seed>.jsonl`` for each of its seeds (``Params.seeds_of("sub.<name>")``), rows
       ``{rank, index, id, method}`` exactly like a built-in selection, with ``index`` into ``pool_dir``'s file.
    4. Write the record (tier, reason, pool hash, reused runs, the card's links and compute) to ``record_path``.

    Returns
    -------
    dict
        The record.

    Raises
    ------
    DataError
        A submission the profile does not list, an invalid submission, a pooled one (validated, not trained yet), or
        a planned reuse that does not hold.
    """
    from mdaq.selectors import write_selection
    from mdaq.types import Pool

    if name not in params.submissions:
        raise DataError("params.yaml", f"{name!r} is not one of the profile's submissions", field="submissions")
    folder = path_under(submissions_dir, name)
    inputs = {"--submissions": folder, "--pools": pools, "--pool-dir": pool_dir, "--features": features, "--ifd": ifd}
    check_distinct(out, inputs)
    check_distinct(record_path, inputs, what="--record")
    card = read_listed_card(params, submissions_dir, name)
    pool = read_frozen_pool(path_under(pools, params.profile))
    check_current(pool, params, "params.yaml")
    problems = validate_submission(folder, params, pool, root=root)
    if problems:
        lines = "; ".join(str(p) for p in problems[:3])
        msg = f"{len(problems)} problem(s), e.g. {lines}; `python -m mdaq submit validate {folder}` lists them all"
        raise DataError(folder, msg)
    if card["mode"] != "per_language":
        raise DataError(folder / "method.yaml", "pooled submissions are validated but not trained yet", field="mode")
    langs = sorted(params.languages)
    ids = submitted_ids(folder, langs)
    tier, reason, differ = check_tier(card, ids, params, pool_dir=pool_dir, features=features, ifd=ifd)
    method = submission_method(name)
    keys = [f"{method}-{lang}-{seed}" for lang in params.languages for seed in params.seeds_of(method)]
    reused = {k: params.reused_runs[k] for k in keys if k in params.reused_runs}
    if reused and tier != VERIFIED:
        raise DataError(
            folder / "method.yaml",
            f"its selector block makes profile {params.profile!r} reuse the runs {sorted(reused.values())}, which "
            f"holds only for a verified submission, but: {reason}. Fix the selection or the card, then rerun "
            f"`python -m mdaq profile use {params.profile}`",
            field="selector",
        )
    record = {
        "name": name,
        "method": method,
        "profile": params.profile,
        "pool_hash": pool.manifest["pool_hash"],
        "mode": card["mode"],
        "tier": tier,
        "tier_reason": reason,
        "n_ids_not_regenerated": differ,
        "seeds": list(params.seeds_of(method)),
        "reused_runs": reused,
        "n_selected": {lang: len(ids[lang]) for lang in langs},
        "folder": folder.as_posix(),
        "card": {key: card.get(key, "") for key in CARD_FIELDS},
    }
    with atomic_dir(out, owned_by=(RECORD,)) as tmp:
        for lang in langs:
            samples = read_samples(path_under(pool_dir, f"{lang}.jsonl"))
            index = {s.id: i for i, s in enumerate(samples)}
            for seed in params.seeds_of(method):
                path = tmp / lang / f"s{seed}.jsonl"
                write_selection(path, Pool(lang, samples), [index[i] for i in ids[lang]], method)
        write_json(tmp / RECORD, record)
    write_json(record_path, record)
    log.info("%s: %s (%s)", method, tier, reason)
    return record
