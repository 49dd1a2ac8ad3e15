"""Split MIDB into QSM-training pairs, a mixed-quality candidate pool and held-out pairs, aligned across languages."""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.config import PrepareConfig
from mdaq.data.midb import RevisionPair, available_langs, load_pairs, midb_path, pair_problem
from mdaq.io import write_json, write_jsonl, write_samples
from mdaq.names import path_under
from mdaq.types import Sample, sample_id

log = logging.getLogger(__name__)

SPLITS = ("qsm_train", "pool", "heldout")
N_SOURCE = 2301  # items in a complete MIDB_train file; the split is defined on this aligned range


def split_bounds(cfg: PrepareConfig, n_source: int = N_SOURCE) -> dict[str, tuple[int, int]]:
    """Half-open source-index ranges ``[start, stop)`` per split, contiguous, with ``cfg.guard`` items between.

    Every language uses the same ranges over *aligned* source indices, so a source item lands in the same split
    in every language, and the guard keeps items next to a boundary out of both neighbours.
    """
    fractions = [getattr(cfg.split, s) for s in SPLITS]
    if any(f < 0 for f in fractions) or not 0 < sum(fractions) <= 1 + 1e-9:
        raise ValueError(f"prepare.split fractions must be >= 0 and sum to at most 1, got {fractions}")
    usable = n_source - cfg.guard * (len(SPLITS) - 1)
    bounds, start = {}, 0
    for name, frac in zip(SPLITS, fractions, strict=True):
        stop = start + int(round(frac * usable))
        bounds[name] = (start, min(stop, n_source))
        start = stop + cfg.guard
    return bounds


def assign_split(source_index: int, bounds: dict[str, tuple[int, int]]) -> str | None:
    """Split name of an aligned source index, or ``None`` for a guard position."""
    for name, (lo, hi) in bounds.items():
        if lo <= source_index < hi:
            return name
    return None


def lang_rng(seed: int, lang: str, purpose: str) -> np.random.Generator:
    """Independent, order-free stream per (seed, language, purpose)."""
    return np.random.default_rng([seed, zlib.crc32(lang.encode()), zlib.crc32(purpose.encode())])


def pool_sample(pair: RevisionPair, is_revised: bool, path: str) -> Sample:
    """The raw or the expert-revised version of a pair as a candidate sample; the label goes to ``meta``."""
    if is_revised:
        fields = (pair.revised_instruction, pair.revised_input, pair.revised_response)
    else:
        fields = (pair.raw_instruction, pair.raw_input, pair.raw_response)
    return Sample(
        id=sample_id(pair.lang, *fields),
        lang=pair.lang,
        instruction=fields[0],
        input=fields[1],
        output=fields[2],
        source=f"midb:{path}#{pair.position}",
        meta={"source_index": pair.source_index, "is_revised": bool(is_revised)},
    )


def heldout_row(pair: RevisionPair) -> dict[str, Any]:
    """A 2-choice preference item: same (revised) prompt, chosen = revised response, rejected = raw response."""
    return {
        "id": sample_id(pair.lang, pair.revised_instruction, pair.revised_input, pair.revised_response),
        "lang": pair.lang,
        "source_index": pair.source_index,
        "instruction": pair.revised_instruction,
        "input": pair.revised_input,
        "chosen": pair.revised_response,
        "rejected": pair.raw_response,
        "distance": pair.distance,
    }


def _subsample_positions(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of a seeded subsample of ``limit`` of ``n`` items (all of them when ``limit`` is 0 or >= n)."""
    if limit <= 0 or n <= limit:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


def qsm_eval_positions(n: int, run_positions: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of the QSM evaluation's held-out pairs among the ``n`` of a language's held-out block.

    They are the first ``limit`` (0 = all) of one seeded order that lists the run stages' held-out pairs
    (``run_positions``) first, each part shuffled. The two sets are therefore nested: the run stages' pairs are a
    subset of the QSM evaluation's whenever ``limit`` is 0 or at least their number (the default, cpu_full and
    paper profiles), and a superset otherwise (the study profile). The run stages' own subsample is left as it was,
    so their held-out files, and every run trained and scored on them, stay the same.
    """
    rest = np.setdiff1d(np.arange(n), run_positions)
    order = np.concatenate([rng.permutation(np.asarray(run_positions, dtype=np.int64)), rng.permutation(rest)])
    return np.sort(order if limit <= 0 else order[:limit])


def nesting(qsm_rows: Sequence[dict[str, Any]], run_rows: Sequence[dict[str, Any]]) -> str:
    """How the QSM evaluation's held-out pairs relate to the run stages' ones (by id): ``equal``, ``superset`` or
    ``subset``; anything else is a bug of :func:`qsm_eval_positions`."""
    a, b = {r["id"] for r in qsm_rows}, {r["id"] for r in run_rows}
    if a == b:
        return "equal"
    if a > b:
        return "superset"
    if a < b:
        return "subset"
    raise AssertionError("the QSM evaluation's held-out pairs must be nested with the run stages' ones")


def split_language(
    pairs: Sequence[RevisionPair], cfg: PrepareConfig, seed: int, path: str
) -> tuple[dict[str, list], Counter]:
    """Split one language's pairs; returns rows per split and counts of dropped items by reason."""
    bounds = split_bounds(cfg)
    dropped: Counter = Counter()
    by_split: dict[str, list[RevisionPair]] = {s: [] for s in SPLITS}
    for pair in pairs:
        split = assign_split(pair.source_index, bounds)
        if split is None:
            dropped["guard"] += 1
            continue
        problem = pair_problem(pair)
        if problem:
            dropped[f"{split}:{problem}"] += 1
            continue
        by_split[split].append(pair)
    lang = pairs[0].lang if pairs else "?"
    pool, held = by_split["pool"], by_split["heldout"]
    pool_pos = _subsample_positions(len(pool), cfg.max_pool, lang_rng(seed, lang, "pool-subsample"))
    held_pos = _subsample_positions(len(held), cfg.max_heldout, lang_rng(seed, lang, "heldout-subsample"))
    qsm_pos = qsm_eval_positions(len(held), held_pos, cfg.qsm_eval_max, lang_rng(seed, lang, "qsm-heldout-order"))
    dropped["pool:max_pool"] += len(pool) - len(pool_pos)
    dropped["heldout:max_heldout"] += len(held) - len(held_pos)
    coins = lang_rng(seed, lang, "pool-coin").random(len(pool_pos)) < cfg.p_revised
    rows = {
        "qsm_train": [asdict(p) for p in by_split["qsm_train"]],
        "pool": [pool_sample(pool[i], bool(c), path) for i, c in zip(pool_pos, coins, strict=True)],
        "heldout": [heldout_row(held[i]) for i in held_pos],
        "qsm_heldout": [heldout_row(held[i]) for i in qsm_pos],
    }
    return rows, +dropped


def prepare(
    midb_root: str | Path, out_dir: str | Path, cfg: PrepareConfig, seed: int, langs: Sequence[str] | None = None
) -> dict[str, Any]:
    """Write ``<out_dir>/{qsm_train,pool,heldout,qsm_heldout}/<lang>.jsonl`` for every MIDB language (or only
    ``langs``: each language is split on its own, so its files do not depend on the others), plus ``report.json``.
    ``qsm_heldout`` holds the QSM evaluation's pairs from the same held-out block, capped by ``cfg.qsm_eval_max`` and
    nested with ``heldout`` (:func:`qsm_eval_positions`).

    Returns
    -------
    dict
        The report: split bounds, counts per language and split, dropped items by reason.
    """
    out_dir = Path(out_dir)
    report: dict[str, Any] = {"bounds": split_bounds(cfg), "languages": {}}
    for lang in available_langs(midb_root) if langs is None else sorted(langs):
        path = midb_path(midb_root, "MIDB_train", lang)
        pairs = load_pairs(path, lang)
        rows, dropped = split_language(pairs, cfg, seed, f"MIDB_train/{path.name}")
        write_jsonl(path_under(out_dir, "qsm_train", f"{lang}.jsonl"), rows["qsm_train"])
        write_samples(path_under(out_dir, "pool", f"{lang}.jsonl"), rows["pool"])
        write_jsonl(path_under(out_dir, "heldout", f"{lang}.jsonl"), rows["heldout"])
        write_jsonl(path_under(out_dir, "qsm_heldout", f"{lang}.jsonl"), rows["qsm_heldout"])
        n_rev = sum(s.meta["is_revised"] for s in rows["pool"])
        report["languages"][lang] = {
            "n_items": len(pairs),
            **{f"n_{s}": len(rows[s]) for s in (*SPLITS, "qsm_heldout")},
            "qsm_heldout_vs_heldout": nesting(rows["qsm_heldout"], rows["heldout"]),
            "pool_share_revised": round(n_rev / max(1, len(rows["pool"])), 4),
            "dropped": dict(sorted(dropped.items())),
        }
        log.info("%s: %s", lang, report["languages"][lang])
    write_json(out_dir / "report.json", report)
    return report
