"""Selection on any list of samples (backs ``mdaq select``): per-language or pooled, features passed in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mdaq.selectors import get_selector
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
) -> list[dict[str, Any]]:
    """Run one selector over ``samples`` and return selection rows ``{rank, index, id, lang, method}``.

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
        ``quality``, ``embeddings``, ``ifd`` arrays aligned with ``samples``.

    Raises
    ------
    ValueError
        The selector needs a feature that was not given (the message says how to provide it), bad params, or
        misaligned features.
    """
    selector = get_selector(method, dict(params or {}), random_state=seed)
    features = {k: v for k, v in (features or {}).items() if v is not None}
    missing = sorted(selector.requires - set(features))
    if missing:
        raise ValueError(f"{method} needs " + "; ".join(FEATURE_HINTS[m] for m in missing))
    groups = group_by_language(samples, features)
    if pooled:
        from mdaq.selectors.budgets import select_pooled

        picked = select_pooled(selector, {k: p for k, (p, _) in groups.items()}, budget, quota, temperature)
    else:
        picked = {lang: selector.select(pool, budget) for lang, (pool, _) in groups.items()}
    rows, rank = [], 0
    for lang, (pool, positions) in groups.items():
        for i in picked[lang]:
            rows.append(
                {"rank": rank, "index": int(positions[i]), "id": pool.samples[i].id, "lang": lang, "method": method}
            )
            rank += 1
    return rows
