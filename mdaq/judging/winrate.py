"""Win rates from pairwise LLM-judge verdicts: combine both orders, AlpacaEval-style statistics, judge diagnostics.

A judgment file holds one record per (item, order); :func:`combine_orders` turns the two orders of an item into
one AlpacaEval-style ``preference`` (reference = ``output_1``, model = ``output_2``) and :func:`win_rate_stats`
summarises preferences exactly as ``alpaca_eval.metrics.get_winrate`` (v0.6.6) does, plus a bootstrap CI.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.errors import DataError
from mdaq.io import check_file, iter_jsonl_lines, read_json, read_text
from mdaq.judging.base import ORDERS

WINNERS = ("model", "reference", "tie")
LANG_POLICIES = ("ignore", "loss")
# AlpacaEval's encoding with the reference as output_1 and the model as output_2.
PREFERENCE = {"model": 2.0, "reference": 1.0, "tie": 1.5}
ITEM_KEYS = ("benchmark", "lang", "item_id", "model", "reference")
GROUP_KEYS = ("benchmark", "lang", "model", "reference")
STAT_KEYS = (
    "win_rate",
    "standard_error",
    "discrete_win_rate",
    "n_total",
    "n_wins",
    "n_wins_base",
    "n_draws",
    "n_unparsed",
    "ci_low",
    "ci_high",
)
_REQUIRED_STR = ("benchmark", "lang", "model", "reference")
_OPTIONAL_LANG = ("model_lang", "reference_lang", "target_lang")
_OPTIONAL_NUM = ("model_len", "reference_len", "prompt_tokens", "completion_tokens", "cost_usd", "latency_s")


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def position_winner(order: str, verdict: int) -> str:
    """The winner named by a position verdict (1 = the answer shown first is better, 2 = second, 0 = tie)."""
    if verdict == 0:
        return "tie"
    first_is_model = order == "model_first"
    return "model" if (verdict == 1) == first_is_model else "reference"


def validate_record(rec: Any, path: str | Path = "<records>", record: int | str | None = None) -> None:
    """Check one judgment record's fields; raise :class:`~mdaq.errors.DataError` naming the record and field.

    Required: ``benchmark, lang`` (non-empty strings), ``model, reference`` (strings), ``item_id`` (string or
    integer), ``order`` (one of :data:`ORDERS`), ``winner`` (one of :data:`WINNERS` or null = unparsed).
    Checked when present: ``verdict`` (0/1/2/null, consistent with ``winner`` and ``order``), languages (string
    or null) and counts/costs (non-negative numbers or null).
    """
    if not isinstance(rec, Mapping):
        raise DataError(path, f"expected an object, got {type(rec).__name__}", record=record)
    for key in (*_REQUIRED_STR, "item_id", "order", "winner"):
        if key not in rec:
            raise DataError(path, "missing", record=record, field=key)
    for key in _REQUIRED_STR:
        # model/reference may be "" (mdaq.judging.JudgeItem's default); benchmark and lang may not
        if not isinstance(rec[key], str) or not (rec[key] or key in ("model", "reference")):
            raise DataError(path, f"expected a non-empty string, got {rec[key]!r}", record=record, field=key)
    if not (isinstance(rec["item_id"], str | int) and not isinstance(rec["item_id"], bool)):
        raise DataError(path, f"expected a string or integer, got {rec['item_id']!r}", record=record, field="item_id")
    if rec["order"] not in ORDERS:
        raise DataError(path, f"{rec['order']!r} is not one of {ORDERS}", record=record, field="order")
    if rec["winner"] is not None and rec["winner"] not in WINNERS:
        raise DataError(path, f"{rec['winner']!r} is not one of {WINNERS} or null", record=record, field="winner")
    verdict = rec.get("verdict")
    if verdict is not None:
        if verdict not in (0, 1, 2) or isinstance(verdict, bool):
            raise DataError(path, f"{verdict!r} is not 0, 1, 2 or null", record=record, field="verdict")
        if position_winner(rec["order"], verdict) != rec["winner"]:
            msg = f"verdict {verdict} with order {rec['order']!r} means {position_winner(rec['order'], verdict)!r}"
            raise DataError(path, f"{msg}, but winner is {rec['winner']!r}", record=record, field="winner")
    for key in _OPTIONAL_LANG:
        if rec.get(key) is not None and not isinstance(rec[key], str):
            raise DataError(path, f"expected a language code or null, got {rec[key]!r}", record=record, field=key)
    for key in _OPTIONAL_NUM:
        val = rec.get(key)
        if val is not None and not (_is_num(val) and val >= 0):
            raise DataError(path, f"expected a non-negative number or null, got {val!r}", record=record, field=key)


def _first_known(recs: Iterable[Mapping[str, Any]], key: str) -> Any:
    return next((r[key] for r in recs if r.get(key) is not None), None)


def _on_target(lang: str | None, target: str | None) -> bool | None:
    """Whether ``lang`` is ``target`` (primary subtag, case-insensitive: ``zh-CN`` = ``zh``); None if unknown."""
    if lang is None or target is None:
        return None
    return lang.replace("_", "-").split("-")[0].lower() == target.replace("_", "-").split("-")[0].lower()


def _apply_lang_loss(item: dict[str, Any]) -> None:
    """Language-fidelity rule: an off-target answer loses to an on-target one, whatever the judge said."""
    model_ok = _on_target(item["model_lang"], item["target_lang"])
    ref_ok = _on_target(item["reference_lang"], item["target_lang"])
    if model_ok is False and ref_ok is True:
        item.update(outcome="reference", preference=PREFERENCE["reference"], lang_rule="model_off_target")
    elif model_ok is True and ref_ok is False:
        item.update(outcome="model", preference=PREFERENCE["model"], lang_rule="reference_off_target")


def _combine_item(key: tuple, orders: dict[str, Mapping[str, Any]], lang_policy: str) -> dict[str, Any]:
    winners = [orders[o]["winner"] for o in ORDERS if o in orders]
    parsed = [w for w in winners if w is not None]
    flipped = len(parsed) == 2 and parsed[0] != parsed[1]
    # Both orders are needed: one order alone carries the judge's position bias, so it is never used as a guess.
    outcome = None if len(parsed) < 2 else ("tie" if flipped else parsed[0])
    recs = list(orders.values())
    item: dict[str, Any] = dict(zip(ITEM_KEYS, key, strict=True))
    item.update(
        outcome=outcome,
        preference=PREFERENCE[outcome] if outcome else math.nan,
        flipped=flipped,
        n_orders=len(orders),
        n_parsed=len(parsed),
        lang_rule=None,
        **{k: _first_known(recs, k) for k in ("model_len", "reference_len", *_OPTIONAL_LANG)},
    )
    if lang_policy == "loss":
        _apply_lang_loss(item)
    return item


def combine_orders(records: Iterable[Mapping[str, Any]], *, lang_policy: str = "ignore") -> list[dict[str, Any]]:
    """Combine the two judged orders of each item into one outcome.

    Items are keyed by ``(benchmark, lang, item_id, model, reference)`` (``item_id`` as a string). Both orders
    parsed and agreeing → that winner; both parsed but different → ``"tie"`` (``flipped=True``); an order
    unparsed (``winner`` null) or missing → outcome ``None`` and ``preference`` nan (counted as unparsed, never
    guessed).

    Parameters
    ----------
    records : iterable of dict
        Judgment records (validated with :func:`validate_record`).
    lang_policy : {"ignore", "loss"}
        ``"loss"``: when the model answer's detected language differs from ``target_lang`` and the reference's
        matches, the item is a reference win (and symmetrically a model win); both off, or a language unknown
        (null), leaves the judge's outcome. The rule overrides the judge, so it also settles unparsed items.

    Returns
    -------
    list of dict
        One per item, in order of first appearance: the key fields, ``outcome`` (``"model"``, ``"reference"``,
        ``"tie"`` or None), ``preference`` (2.0, 1.0, 1.5 or nan), ``flipped``, ``n_orders``, ``n_parsed``,
        ``lang_rule`` (None, ``"model_off_target"`` or ``"reference_off_target"``), ``model_len``,
        ``reference_len``, ``model_lang``, ``reference_lang``, ``target_lang``.

    Raises
    ------
    DataError
        On an invalid record, or a second record for the same item and order.
    ValueError
        On an unknown ``lang_policy``.
    """
    if lang_policy not in LANG_POLICIES:
        raise ValueError(f"lang_policy {lang_policy!r} is not one of {LANG_POLICIES}")
    by_item: dict[tuple, dict[str, Mapping[str, Any]]] = {}
    for i, rec in enumerate(records):
        validate_record(rec, "<records>", i)
        key = tuple(str(rec[k]) for k in ITEM_KEYS)
        orders = by_item.setdefault(key, {})
        if rec["order"] in orders:
            raise DataError("<records>", f"second {rec['order']!r} judgment of item {key}", record=i, field="order")
        orders[rec["order"]] = rec
    return [_combine_item(key, orders, lang_policy) for key, orders in by_item.items()]


def bootstrap_ci(values: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean, resampling items with replacement (seeded).

    Resamples are drawn in chunks of at most about four million indices, so memory stays bounded for large n.
    Returns ``(nan, nan)`` for an empty input.
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0 or n_boot < 1:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, 4_000_000 // n)
    for start in range(0, n_boot, step):
        m = min(step, n_boot - start)
        means[start : start + m] = x[rng.integers(0, n, size=(m, n))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def win_rate_stats(preferences: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """AlpacaEval win-rate statistics of preferences (1 = reference wins, 2 = model wins, 1.5 = tie), in percent.

    Matches ``alpaca_eval.metrics.get_winrate`` / ``pairwise_to_winrate`` of alpaca_eval 0.6.6:
    ``win_rate = mean(p − 1) × 100``; ``standard_error`` = the sample standard error of ``p − 1`` times 100
    (pandas ``Series.sem()``, ddof = 1, so nan for a single item); ``discrete_win_rate`` = the same mean after
    rounding each non-tie preference to 1 or 2 (exact 1.5 stays a tie worth ½); ``n_wins`` counts ``p > 1.5``,
    ``n_wins_base`` ``p < 1.5``, ``n_draws`` ``p == 1.5``. A preference of 0 is AlpacaEval's legacy tie code
    and reads as 1.5.

    Parameters
    ----------
    preferences : array-like of float
        Values in [1, 2], 0 (tie) or nan (unparsed: excluded, counted in ``n_unparsed``).
    n_boot : int
        Bootstrap resamples for ``ci_low``/``ci_high`` (percentile 95% interval over items).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    dict
        The keys of :data:`STAT_KEYS`; rates are nan and counts 0 when no preference is parsed.

    Raises
    ------
    ValueError
        On a value outside [1, 2] that is neither 0 nor nan.
    """
    p = np.asarray(preferences, dtype=float).ravel()
    p = np.where(p == 0, 1.5, p)
    is_nan = np.isnan(p)
    bad = ~is_nan & ~((p >= 1) & (p <= 2))
    if bad.any():
        raise ValueError(f"preference {p[bad][0]!r} (index {int(np.flatnonzero(bad)[0])}) is outside [1, 2]")
    p = p[~is_nan]
    n = len(p)
    x = p - 1
    discrete = np.where(p == 1.5, 0.5, np.round(p) - 1)
    lo, hi = bootstrap_ci(x * 100, n_boot, seed)
    return {
        "win_rate": float(x.mean() * 100) if n else math.nan,
        "standard_error": float(x.std(ddof=1) / math.sqrt(n) * 100) if n > 1 else math.nan,
        "discrete_win_rate": float(discrete.mean() * 100) if n else math.nan,
        "n_total": n,
        "n_wins": int((x > 0.5).sum()),
        "n_wins_base": int((x < 0.5).sum()),
        "n_draws": int((p == 1.5).sum()),
        "n_unparsed": int(is_nan.sum()),
        "ci_low": lo,
        "ci_high": hi,
    }


@dataclass(frozen=True)
class JudgmentFile:
    """A judgment file as read by :func:`read_judgments`.

    ``kind`` is ``"mdaq"`` (``records`` = validated per-order judgment records) or ``"alpaca_eval"``
    (``records`` = one dict per annotation: ``preference`` (float, nan when null), ``model`` (``generator_2`` or
    None), ``instruction``, ``output_1``, ``output_2``).
    """

    path: str
    kind: str
    records: list[dict[str, Any]]


def _read_alpaca(path: Path) -> list[dict[str, Any]]:
    rows = read_json(path)
    if not isinstance(rows, list):
        raise DataError(path, f"expected a list of AlpacaEval annotations, got a JSON {type(rows).__name__}")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(path, f"expected an object, got {type(row).__name__}", record=i)
        for key in ("preference", "output_1", "output_2"):
            if key not in row:
                raise DataError(path, "missing", record=i, field=key)
        pref = row["preference"]
        if pref is not None and not (_is_num(pref) and (pref == 0 or 1 <= pref <= 2)):
            raise DataError(path, f"{pref!r} is not a number in [1, 2], 0 (tie) or null", record=i, field="preference")
        for key in ("output_1", "output_2"):
            if not isinstance(row[key], str):
                raise DataError(path, f"expected a string, got {type(row[key]).__name__}", record=i, field=key)
        out.append(
            {
                "preference": math.nan if pref is None else float(pref),
                "model": row.get("generator_2"),
                "instruction": row.get("instruction"),
                "output_1": row["output_1"],
                "output_2": row["output_2"],
            }
        )
    return out


def _read_mdaq(path: Path) -> list[dict[str, Any]]:
    out, seen = [], {}
    for n, rec in iter_jsonl_lines(path):
        validate_record(rec, path, f"line {n}")
        key = (*(str(rec[k]) for k in ITEM_KEYS), rec["order"])
        if key in seen:
            raise DataError(
                path,
                f"second judgment of this item and order (first at line {seen[key]})",
                record=f"line {n}",
                field="order",
            )
        seen[key] = n
        out.append(rec)
    return out


def read_judgments(path: str | Path) -> JudgmentFile:
    """Read an AlpacaEval annotations file (``.json``: a list) or an mdaq judgment file (``.jsonl``).

    Other suffixes are sniffed: a file whose first non-blank character is ``[`` is AlpacaEval JSON.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    DataError
        On malformed JSON, an invalid record (the message names the record, list index or ``line N`` in JSONL,
        and the field), a folder, or a file without judgments.
    """
    path = check_file(path)
    if path.suffix == ".json":
        is_alpaca = True
    elif path.suffix == ".jsonl":
        is_alpaca = False
    else:
        is_alpaca = read_text(path).lstrip().startswith("[")
    records = _read_alpaca(path) if is_alpaca else _read_mdaq(path)
    if not records:
        raise DataError(path, "no judgments: the file is empty")
    return JudgmentFile(str(path), "alpaca_eval" if is_alpaca else "mdaq", records)


def winrate_report(
    path: str | Path, lang_policy: str = "ignore", *, by_group: bool = True, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Win-rate statistics of a judgment file (see :func:`win_rate_stats` for the keys).

    The overall numbers pool every item of the file. For mdaq judgment files with ``by_group``, ``groups`` lists
    the same statistics per ``(benchmark, lang, model, reference)``, sorted by those keys.

    Raises
    ------
    DataError
        On bad input, or ``lang_policy="loss"`` for AlpacaEval annotations (they carry no detected languages).
    """
    jf = read_judgments(path)
    if jf.kind == "alpaca_eval":
        if lang_policy != "ignore":
            raise DataError(path, f"lang_policy={lang_policy!r} needs detected languages; AlpacaEval files have none")
        return win_rate_stats([r["preference"] for r in jf.records], n_boot, seed)
    items = combine_orders(jf.records, lang_policy=lang_policy)
    report = win_rate_stats([it["preference"] for it in items], n_boot, seed)
    if by_group:
        groups: dict[tuple, list[float]] = {}
        for it in items:
            groups.setdefault(tuple(it[k] for k in GROUP_KEYS), []).append(it["preference"])
        report["groups"] = [
            {**dict(zip(GROUP_KEYS, key, strict=True)), **win_rate_stats(prefs, n_boot, seed)}
            for key, prefs in sorted(groups.items())
        ]
    return report


def _share(flags: Sequence[float]) -> float:
    return float(np.mean(flags)) if len(flags) else math.nan


def _diagnostics(records: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    parsed = [r for r in records if r["winner"] is not None]
    # A tie favours neither position: it counts ½, so an unbiased judge scores 0.5 with or without ties.
    first = [
        0.5 if r["winner"] == "tie" else float((r["winner"] == "model") == (r["order"] == "model_first"))
        for r in parsed
    ]
    longer = []
    for r in parsed:
        m_len, r_len = r.get("model_len"), r.get("reference_len")
        if r["winner"] != "tie" and m_len is not None and r_len is not None and m_len != r_len:
            longer.append(float((r["winner"] == "model") == (m_len > r_len)))
    both = [it for it in items if it["n_parsed"] == 2]
    known = [_on_target(it["model_lang"], it["target_lang"]) for it in items]
    return {
        "position_bias_rate": _share([float(it["flipped"]) for it in both]),
        "first_position_rate": _share(first),
        "longer_preferred_rate": _share(longer),
        "parse_rate": len(parsed) / len(records) if records else math.nan,
        "off_target_lang_share": _share([float(not k) for k in known if k is not None]),
        "n_items": len(items),
        "n_records": len(records),
        "cost_usd": float(sum(r.get("cost_usd") or 0.0 for r in records)),
        "prompt_tokens": int(sum(r.get("prompt_tokens") or 0 for r in records)),
        "completion_tokens": int(sum(r.get("completion_tokens") or 0 for r in records)),
    }


def judge_diagnostics(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How the judge behaves: position and length bias, parse rate, language fidelity of answers, cost.

    Parameters
    ----------
    records : sequence of dict
        Per-order judgment records.

    Returns
    -------
    dict
        ``overall`` and ``groups`` (a list, one per ``(benchmark, lang, model, reference)``), each with
        ``position_bias_rate`` (items with both orders parsed whose winner differs between orders),
        ``first_position_rate`` (parsed single verdicts favouring the answer shown first, ties ½; 0.5 = no bias),
        ``longer_preferred_rate`` (decisive single verdicts with known, different lengths won by the longer
        answer), ``parse_rate`` (records with a winner), ``off_target_lang_share`` (items whose model answer's
        detected language differs from ``target_lang``, among items where both are known), ``n_items``,
        ``n_records``, and summed ``cost_usd``, ``prompt_tokens``, ``completion_tokens`` (null = 0). Rates
        with no eligible case are nan.
    """
    items = combine_orders(records)
    by_group: dict[tuple, tuple[list, list]] = {}
    for r in records:
        by_group.setdefault(tuple(str(r[k]) for k in GROUP_KEYS), ([], []))[0].append(r)
    for it in items:
        by_group[tuple(it[k] for k in GROUP_KEYS)][1].append(it)
    groups = [
        {**dict(zip(GROUP_KEYS, key, strict=True)), **_diagnostics(recs, its)}
        for key, (recs, its) in sorted(by_group.items())
    ]
    return {"overall": _diagnostics(records, items), "groups": groups}


def json_safe(obj: Any) -> Any:
    """``obj`` with nan/inf floats replaced by None and numpy scalars by Python ones, ready for strict JSON."""
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
