"""Multilingual budgets: split one total over languages, and select cross-lingually under per-language quotas."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mdaq.config import QUOTA_MODES
from mdaq.selectors import selection_parts
from mdaq.selectors.base import FEATURES, BaseSelector
from mdaq.types import Pool

__all__ = ["QUOTA_MODES", "language_quotas", "pooled_pool", "select_pooled", "pooled_report"]


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _log_weights(sizes: np.ndarray, mode: str, temperature: float) -> np.ndarray:
    """Log of the unnormalised share per language (log space, so that a small temperature cannot overflow)."""
    if mode == "equal":
        return np.zeros(len(sizes))
    with np.errstate(divide="ignore", invalid="ignore"):  # empty pools: log 0 = -inf (-inf / inf = NaN); unused
        log_n = np.log(sizes.astype(np.float64))
        return log_n if mode == "proportional" else log_n / temperature


def _water_fill(log_w: np.ndarray, caps: np.ndarray, target: int) -> np.ndarray:
    """Real-valued shares of ``target`` proportional to ``exp(log_w)``, none above its cap (excess re-split)."""
    share = np.zeros(len(caps))
    fixed = caps <= 0
    while not fixed.all():
        free = ~fixed
        w = np.exp(log_w[free] - log_w[free].max())  # the largest free weight is 1: no underflow to all-zero
        share[free] = (target - share[fixed].sum()) * w / w.sum()
        over = free & (share >= caps)
        if not over.any():
            break
        share[over] = caps[over]
        fixed |= over
    return share


def language_quotas(
    counts: Mapping[str, int], total: int, mode: str = "equal", temperature: float = 1.0
) -> dict[str, int]:
    """Split a total budget over languages.

    Parameters
    ----------
    counts : Mapping[str, int]
        Pool size per language code.
    total : int
        The budget summed over languages (>= 0).
    mode : {"equal", "proportional", "temperature"}
        ``equal``: the same share for every language; ``proportional``: shares proportional to pool size;
        ``temperature``: proportional to ``n_l ** (1 / temperature)`` (1 is proportional, a large value tends to
        equal, a value below 1 favours the large pools).
    temperature : float
        Sampling temperature, > 0 (``inf`` is allowed and equals ``equal``); validated in every mode.

    Returns
    -------
    dict[str, int]
        Quota per language, keys sorted. The quotas sum to exactly ``min(total, sum(counts))`` and none exceeds
        its language's pool size.

    Notes
    -----
    The real-valued shares are first water-filled: a language whose share exceeds its pool size is capped at it
    and the excess is re-split over the languages that still have room, by the same rule, until nothing exceeds
    its cap. The shares are then rounded once by largest remainder (ties broken by language code, ascending);
    a capped language has no remainder, so rounding never pushes a quota above its pool size.

    Raises
    ------
    ValueError
        Negative or non-integer ``total`` or count, unknown ``mode``, non-positive ``temperature``.
    """
    total = _check_count("total", total)
    if mode not in QUOTA_MODES:
        raise ValueError(f"mode must be one of {', '.join(QUOTA_MODES)}, got {mode!r}")
    if isinstance(temperature, bool) or not (isinstance(temperature, int | float | np.number) and temperature > 0):
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    langs = sorted(counts)
    caps = np.array([_check_count(f"counts[{lang!r}]", counts[lang]) for lang in langs], dtype=np.int64)
    target = min(total, int(caps.sum()))
    if target == 0:
        return {lang: 0 for lang in langs}
    share = _water_fill(_log_weights(caps, mode, float(temperature)), caps.astype(np.float64), target)
    share = np.minimum(share, caps)
    # floor with a little slack so that 24.9999999 (float noise for 25) does not lose a whole unit
    quota = np.minimum(np.floor(share + 1e-9), caps).astype(np.int64)
    frac = np.where(quota < caps, np.round(share - quota, 9), -np.inf)  # only languages with room may get +1
    order = np.lexsort((np.arange(len(langs)), -frac))  # langs are sorted, so index order is code order
    short = target - int(quota.sum())
    quota[order[:short]] += 1
    assert quota.sum() == target and (quota <= caps).all(), "language_quotas: rounding broke an invariant"
    return {lang: int(q) for lang, q in zip(langs, quota, strict=True)}


def _joint_feature(pools: Mapping[str, Pool], langs: list[str], feature: str) -> np.ndarray | None:
    """Concatenate ``feature`` over the non-empty pools; None when none has it; ValueError when only some do."""
    filled = [lang for lang in langs if len(pools[lang])]
    have = [lang for lang in filled if getattr(pools[lang], feature) is not None]
    if not have:
        return None
    if len(have) != len(filled):
        lack = [lang for lang in filled if lang not in have]
        raise ValueError(
            f"pools disagree on {feature}: present for {', '.join(have)}, missing for {', '.join(lack)}; "
            "a pooled selection needs it for every language or for none"
        )
    arrays = [np.asarray(getattr(pools[lang], feature)) for lang in have]
    if feature == "embeddings":
        dims = {lang: a.shape[1] for lang, a in zip(have, arrays, strict=True)}
        if len(set(dims.values())) > 1:
            raise ValueError(f"embeddings have different dimensions per language: {dims}")
    return np.concatenate(arrays, axis=0)


def pooled_pool(pools: Mapping[str, Pool]) -> tuple[Pool, np.ndarray, np.ndarray]:
    """One ``Pool`` (lang ``"pooled"``) over all languages, languages in sorted order.

    Returns
    -------
    joint : Pool
        Samples of every language, concatenated; each feature (``quality``, ``embeddings``, ``ifd``)
        concatenated when every non-empty pool has it, else None. Features of empty pools are ignored.
    lang_id : numpy.ndarray of int64
        Per joint row, the position of its language in ``sorted(pools)``.
    local : numpy.ndarray of int64
        Per joint row, its index in its own language's pool.

    Raises
    ------
    ValueError
        A feature present for some languages and missing for others (the message names both groups), or
        embeddings of different dimensions.
    """
    langs = sorted(pools)
    for lang in langs:
        if pools[lang].lang != lang:
            raise ValueError(f"pools[{lang!r}] holds a pool for language {pools[lang].lang!r}")
    sizes = np.array([len(pools[lang]) for lang in langs], dtype=np.int64)
    samples = [s for lang in langs for s in pools[lang].samples]
    features = {name: _joint_feature(pools, langs, name) for name in FEATURES}
    lang_id = np.repeat(np.arange(len(langs), dtype=np.int64), sizes)
    local = np.arange(len(samples), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return Pool("pooled", samples, **features), lang_id, local


def _within_quota(ranked: np.ndarray, lang_id: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Mask of the entries of ``ranked`` (joint indices, priority order) kept while their language has ``room``."""
    lid = lang_id[ranked]
    by_lang = np.lexsort((np.arange(len(ranked)), lid))  # stable grouping by language
    starts = np.searchsorted(lid[by_lang], lid[by_lang], side="left")
    occurrence = np.empty(len(ranked), dtype=np.int64)
    occurrence[by_lang] = np.arange(len(ranked)) - starts  # how many earlier picks of the same language
    return occurrence < room[lid]


def select_pooled(
    selector: BaseSelector,
    pools: Mapping[str, Pool],
    total: int,
    mode: str = "equal",
    temperature: float = 1.0,
    *,
    return_parts: bool = False,
) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], dict[str, np.ndarray | None]]:
    """Cross-lingual selection under per-language quotas.

    The selector sees one joint pool over all languages (so, e.g., its clusters are cross-lingual) and ranks it
    with budget ``sum(quotas)``; the ranking is walked in priority order, keeping a sample while its language's
    quota (:func:`language_quotas`) is not filled. Languages left short are topped up by re-running the selector
    on the joint pool restricted to the unselected samples of the not-yet-filled languages, with budget equal to
    their remaining slots; each round fills at least one language (it returns as many samples as slots are left,
    from those languages only), so at most one round per language is needed.

    Parameters
    ----------
    selector : BaseSelector
        Any registered selector; one with ``uses_budget = False`` (``full``) gets every sample of every language.
    pools : Mapping[str, Pool]
        One pool per language code (``pools[lang].lang == lang``).
    total : int
        Budget summed over languages.
    mode, temperature
        How ``total`` is split, see :func:`language_quotas`.
    return_parts : bool
        Also return the part of every pick (see :func:`mdaq.selectors.selection_parts`).

    Returns
    -------
    dict[str, numpy.ndarray]
        Per language (keys sorted), int64 indices into that language's own pool, in global priority order: the
        first round's picks in the selector's rank order, then each top-up round's.
    parts : dict[str, numpy.ndarray of str or None]
        Only with ``return_parts``: per language, the part of each pick, aligned with its indices (the label the
        selector gave it in the round that picked it: a top-up round's own quality picks are ``"quality"``); None
        for every language when the selector does not label its picks.

    Raises
    ------
    ValueError
        Bad ``total``/``mode``/``temperature``, inconsistent features across pools (see :func:`pooled_pool`), or a
        feature the selector requires missing.
    """
    langs = sorted(pools)
    quotas = language_quotas({lang: len(pools[lang]) for lang in langs}, total, mode, temperature)
    joint, lang_id, local = pooled_pool(pools)
    labels: np.ndarray | None = None
    if not selector.uses_budget:
        picked = selector.select(joint, 0)
        labels = selection_parts(selector, len(picked))
    else:
        room = np.array([quotas[lang] for lang in langs], dtype=np.int64)
        taken = np.zeros(len(joint), dtype=bool)
        rounds: list[np.ndarray] = []
        round_labels: list[np.ndarray | None] = []
        candidates = np.arange(len(joint), dtype=np.int64)
        while room.sum() > 0:
            sub = joint if len(candidates) == len(joint) else _subpool(joint, candidates)
            ranked = candidates[selector.select(sub, int(room.sum()))]
            ranked_labels = selection_parts(selector, len(ranked))
            keep = _within_quota(ranked, lang_id, room)
            kept = ranked[keep]
            if len(kept) == 0:  # cannot happen with a valid selector; guards against an endless loop
                raise RuntimeError(f"select_pooled: {selector.name} made no progress with {room.sum()} slots left")
            rounds.append(kept)
            round_labels.append(None if ranked_labels is None else ranked_labels[keep])
            taken[kept] = True
            room -= np.bincount(lang_id[kept], minlength=len(langs))
            candidates = np.flatnonzero(~taken & (room[lang_id] > 0))
        picked = np.concatenate(rounds) if rounds else np.zeros(0, dtype=np.int64)
        if rounds and all(r is not None for r in round_labels):
            labels = np.concatenate(round_labels)
    lid = lang_id[picked]
    selected = {lang: local[picked[lid == k]].astype(np.int64) for k, lang in enumerate(langs)}
    if not return_parts:
        return selected
    return selected, {lang: None if labels is None else labels[lid == k] for k, lang in enumerate(langs)}


def _subpool(joint: Pool, rows: np.ndarray) -> Pool:
    """The rows ``rows`` of ``joint`` as a pool of their own (features sliced alongside)."""
    features = {
        name: None if getattr(joint, name) is None else np.asarray(getattr(joint, name))[rows] for name in FEATURES
    }
    return Pool(joint.lang, [joint.samples[i] for i in rows], **features)


def pooled_report(selected: Mapping[str, np.ndarray], pools: Mapping[str, Pool]) -> dict:
    """Per-language counts and shares of a (pooled) selection.

    Returns
    -------
    dict
        ``{"total": n, "languages": {lang: {"n_selected", "n_pool", "share", "pool_fraction"}}}`` with languages
        sorted; ``share`` is the language's part of the selection, ``pool_fraction`` the part of its pool that was
        selected (both 0.0 when the denominator is 0).

    Raises
    ------
    ValueError
        ``selected`` and ``pools`` name different languages, or a selection is larger than its pool.
    """
    if set(selected) != set(pools):
        diff = sorted(set(selected) ^ set(pools))
        raise ValueError(f"selected and pools name different languages: {', '.join(map(str, diff))}")
    counts = {lang: len(selected[lang]) for lang in sorted(selected)}
    for lang, n in counts.items():
        if n > len(pools[lang]):
            raise ValueError(f"selected[{lang!r}] has {n} indices but its pool only {len(pools[lang])} samples")
    total = sum(counts.values())
    languages = {
        lang: {
            "n_selected": n,
            "n_pool": len(pools[lang]),
            "share": n / total if total else 0.0,
            "pool_fraction": n / len(pools[lang]) if len(pools[lang]) else 0.0,
        }
        for lang, n in counts.items()
    }
    return {"total": total, "languages": languages}
