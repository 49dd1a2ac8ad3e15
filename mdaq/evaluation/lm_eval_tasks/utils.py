"""``process_results`` and aggregation functions that the mdaq lm-eval task YAMLs reference (``!function utils.…``).

lm-eval's loglikelihood requests return only ``(logprob, is_greedy)`` per continuation, so the number of scored
tokens cannot be seen here. Each prepared document therefore carries ``n_tokens = [n_chosen, n_rejected]``, counted
by :mod:`mdaq.evaluation.harness` with the evaluated model's own pair encoding (the very ``_encode_pair`` that lm-eval
calls),
so the counts are exactly the lengths of the scored continuations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def _win(a: float, b: float) -> float:
    """1 if ``a > b``, 0.5 on a tie, else 0 (the tie rule of :func:`mdaq.evaluation.heldout.preference_metrics`)."""
    if a > b:
        return 1.0
    return 0.5 if a == b else 0.0


def expert_pref_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, float]:
    """Per-pair scores of ``mdaq_expert_pref``.

    Parameters
    ----------
    doc : dict
        A prepared held-out document (``chosen``, ``rejected``, ``n_tokens``).
    results : sequence of (float, bool)
        lm-eval's ``(summed logprob, is_greedy)`` of each choice, in the order ``[chosen, rejected]``.

    Returns
    -------
    dict
        ``expert_pref_acc`` (mean per-token log-prob, chosen vs rejected), ``acc`` (summed log-prob) and
        ``acc_norm`` (log-prob per character, lm-eval's normalisation); each 1, 0.5 (tie) or 0.
    """
    (ll_c, _), (ll_r, _) = results
    n_c, n_r = doc["n_tokens"]
    len_c, len_r = len(doc["chosen"]), len(doc["rejected"])
    return {
        "expert_pref_acc": _win(ll_c / max(n_c, 1), ll_r / max(n_r, 1)),
        "acc": _win(ll_c, ll_r),
        "acc_norm": _win(ll_c / max(len_c, 1), ll_r / max(len_r, 1)),
    }


def ref_nll_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """Per-document items of ``mdaq_ref_nll``: ``(summed logprob, token count)`` of the chosen response, and the
    count alone (aggregated to the total number of scored tokens)."""
    ((ll, _),) = results
    n = int(doc["n_tokens"][0])
    return {"ref_nll": (float(ll), n), "ref_tokens": n}


def token_nll(items: Sequence[tuple[float, int]]) -> float:
    """Corpus-level per-token NLL: total ``-logprob`` over total tokens (not a mean of per-document ratios)."""
    if not items:
        return float("nan")
    return -math.fsum(ll for ll, _ in items) / max(sum(n for _, n in items), 1)


def total(items: Sequence[int]) -> int:
    """Sum of per-document counts."""
    return int(sum(items))
