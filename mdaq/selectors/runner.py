"""Selection on any list of samples (backs ``mdaq select``): per-language or pooled, features passed in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mdaq.io import first_nonfinite_row, nonfinite_text
from mdaq.selectors import UNLABELLED_PART, get_selector, selection_parts
from mdaq.selectors.base import FINITE_FEATURES
from mdaq.types import Pool, Sample

FEATURE_HINTS = {
    "quality": "QSM scores: pass --features DIR (with quality.npy) or --qsm DIR (a saved QSM)",
    "embeddings": "embeddings: pass --features DIR (with embeddings.npy) or --encoder DIR (an encoder folder)",
    "ifd": "IFD scores: pass --ifd DIR (with ifd.npy) or --ifd-model DIR (a causal LM folder)",
}


def group_by_language(
    samples: Sequence[Sample], features: Mapping[str, np.ndarray | None]
) -> dict[str, tuple[Pool, np.ndarray]]:
    """One :class:`Pool` per language (sorted), with its rows of each feature, and the input positions of its
    samples.

    Raises
    ------
    ValueError
        A feature array without one row per sample.
    """
    langs = np.array([s.lang for s in samples], dtype=object)
    for name, arr in features.items():
        if arr is not None and len(arr) != len(samples):
            raise ValueError(f"{name} has {len(arr)} rows for {len(samples)} samples")
        row = first_nonfinite_row(arr) if arr is not None and name in FINITE_FEATURES else None
        if row is not None:
            raise ValueError(f"{name} row {row} (sample {samples[row].id}) holds {nonfinite_text(arr, row)}")
    out = {}
    for lang in sorted(set(langs.tolist())):
        rows = np.flatnonzero(langs == lang)
        feats = {k: (None if v is None else np.asarray(v)[rows]) for k, v in features.items()}
        out[lang] = (Pool(lang, [samples[i] for i in rows], **feats), rows)
    return out


def select_samples(
    samples: Sequence[Sample],
    method: str,
    budget: int,
    *,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    features: Mapping[str, np.ndarray | None] | None = None,
    pooled: bool = False,
    quota: str = "equal",
    temperature: float = 1.0,
    params_source: str = "selector parameters",
) -> list[dict[str, Any]]:
    """Run one selector over ``samples`` and return selection rows ``{rank, index, id, lang, method, part}``.

    ``part`` is the pick's part when the selector labels them (``mdaq_das``: ``"quality"``, ``"diversity"``,
    ``"fill"``; see :func:`mdaq.selectors.selection_parts`), else ``"selected"``.

    Parameters
    ----------
    samples : sequence of Sample
        Candidates, any number of languages; ``index`` in the result is the position in this sequence.
    method : str
        Registered selector name (``python -m mdaq ls``).
    budget : int
        Per language (default mode), or in total (``pooled=True``, split by ``quota``, see
        :func:`mdaq.selectors.budgets.language_quotas`).
    params : mapping, optional
        Selector hyperparameters (its ``__init__`` is the schema).
    seed : int
        The selector's ``random_state``.
    features : mapping, optional
        ``quality``, ``embeddings``, ``ifd`` arrays aligned with ``samples`` (``quality`` and ``embeddings`` must
        be finite; ``ifd`` may hold NaN for an unscorable sample).
    params_source : str
        Where ``params`` came from, for error messages (``"--params"``, a params file).

    Raises
    ------
    ValueError
        The selector needs a feature that was not given (the message says how to provide it), bad params (a
        :class:`~mdaq.errors.DataError` naming ``params_source`` and the key), misaligned features, or a NaN or
        infinite quality score or embedding (naming the feature, the row and the sample id).
    """
    selector = get_selector(method, params, random_state=seed, source=params_source)
    features = {k: v for k, v in (features or {}).items() if v is not None}
    missing = sorted(selector.requires - set(features))
    if missing:
        raise ValueError(f"{method} needs " + "; ".join(FEATURE_HINTS[m] for m in missing))
    groups = group_by_language(samples, features)
    if pooled:
        from mdaq.selectors.budgets import select_pooled

        pools = {k: p for k, (p, _) in groups.items()}
        picked, parts = select_pooled(selector, pools, budget, quota, temperature, return_parts=True)
    else:
        picked, parts = {}, {}
        for lang, (pool, _) in groups.items():
            picked[lang] = selector.select(pool, budget)
            parts[lang] = selection_parts(selector, len(picked[lang]))  # read before the next language's call
    rows, rank = [], 0
    for lang, (pool, positions) in groups.items():
        labels = [UNLABELLED_PART] * len(picked[lang]) if parts[lang] is None else parts[lang]
        for i, part in zip(picked[lang], labels, strict=True):
            row = {"rank": rank, "index": int(positions[i]), "id": pool.samples[i].id, "lang": lang, "method": method}
            rows.append(row | {"part": str(part)})
            rank += 1
    return rows
