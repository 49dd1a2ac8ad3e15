"""Judge-free evaluation on held-out MIDB pairs: expert-preference accuracy and response NLL of a fine-tuned model."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mdaq.config import EvaluateConfig
from mdaq.hardware import configure_torch
from mdaq.io import ITEM_COLUMNS
from mdaq.models.lm import (
    Encoded,
    encode_pair,
    encode_responses,
    encoded_logprobs,
    format_prompt,
    load_causal_lm,
    resolve_device,
)
from mdaq.stats import ratio_nll

log = logging.getLogger(__name__)


def sequence_logprobs(model: Any, tok: Any, prompts: Sequence[str], responses: Sequence[str], cfg: EvaluateConfig):
    """Summed log-probability and token count of each response given its prompt (no gradients; no EOS scored).

    Returns
    -------
    (sum_logprob, n_tokens) : tuple of numpy arrays, one entry per (prompt, response)
    """
    encoded = [encode_pair(tok, p, r, cfg.max_seq_len, eos=False) for p, r in zip(prompts, responses, strict=True)]
    return encoded_logprobs(model, tok, encoded, cfg.batch_size, cfg.precision)


def encode_heldout(tok: Any, rows: Sequence[dict[str, Any]], max_len: int) -> tuple[list[Encoded], list[Encoded]]:
    """(chosen, rejected) encodings of held-out pairs: no EOS (the score is about the text, not where the model would
    stop, which favours the shorter response), and one prompt truncation shared by both responses of a pair
    (:func:`mdaq.models.lm.encode_responses`)."""
    chosen, rejected = [], []
    for r in rows:
        prompt = format_prompt(r["instruction"], r.get("input", ""))
        c, j = encode_responses(tok, prompt, [r["chosen"], r["rejected"]], max_len, eos=False)
        chosen.append(c)
        rejected.append(j)
    return chosen, rejected


def item_records(
    rows: Sequence[dict[str, Any]],
    chosen: tuple[np.ndarray, np.ndarray],
    rejected: tuple[np.ndarray, np.ndarray],
    flags: tuple[Sequence[Encoded], Sequence[Encoded]] | None = None,
) -> pd.DataFrame:
    """Per-item records (:data:`ITEM_COLUMNS`) of scored held-out pairs.

    ``margin`` = mean per-token log-prob of the revised response minus that of the raw one; ``correct`` = 1 when
    the margin is positive, 0.5 on a tie, else 0. ``flags``: the encodings, for the truncation columns (False
    without them).
    """
    (c_sum, c_n), (r_sum, r_n) = chosen, rejected
    c_norm, r_norm = c_sum / np.maximum(c_n, 1), r_sum / np.maximum(r_n, 1)
    margin = c_norm - r_norm
    enc_c, enc_r = flags if flags is not None else ([None] * len(rows), [None] * len(rows))
    return pd.DataFrame(
        {
            "lang": [str(r.get("lang", "")) for r in rows],
            "item": [str(r.get("id", i)) for i, r in enumerate(rows)],
            "source_index": [int(r.get("source_index", -1)) for r in rows],
            "chosen_lp": np.asarray(c_sum, dtype=float),
            "chosen_n": np.asarray(c_n, dtype=np.int64),
            "rejected_lp": np.asarray(r_sum, dtype=float),
            "rejected_n": np.asarray(r_n, dtype=np.int64),
            "margin": margin,
            "correct": (margin > 0).astype(float) + 0.5 * (margin == 0),
            "prompt_truncated": [bool(e and e.prompt_truncated) for e in enc_c],
            "chosen_truncated": [bool(e and e.response_truncated) for e in enc_c],
            "rejected_truncated": [bool(e and e.response_truncated) for e in enc_r],
        },
        columns=list(ITEM_COLUMNS),
    )


def preference_metrics(chosen: tuple[np.ndarray, np.ndarray], rejected: tuple[np.ndarray, np.ndarray]) -> dict:
    """Expert-preference accuracy (length-normalised log-likelihood, chosen vs rejected) and chosen-response NLL.

    ``expert_pref_acc`` = share of pairs whose expert-revised response has the higher mean per-token log-prob
    (ties count half); ``ref_nll`` = per-token NLL over all revised-response tokens (lower is better) with its
    ratio-estimator SE; ``margin`` = mean per-pair difference of the two mean log-probs, with its SE.
    """
    (c_sum, c_n), (r_sum, r_n) = chosen, rejected
    c_sum, r_sum = np.asarray(c_sum, dtype=float), np.asarray(r_sum, dtype=float)
    c_n, r_n = np.asarray(c_n), np.asarray(r_n)
    margins = c_sum / np.maximum(c_n, 1) - r_sum / np.maximum(r_n, 1)
    wins = (margins > 0).astype(float) + 0.5 * (margins == 0)
    n = len(wins)
    acc = float(wins.mean()) if n else float("nan")
    nll, nll_se = ratio_nll(c_sum, c_n) if n else (float("nan"), float("nan"))
    return {
        "expert_pref_acc": acc,
        "expert_pref_acc_se": float(np.sqrt(acc * (1 - acc) / n)) if n else float("nan"),
        "ref_nll": float(nll),
        "ref_nll_se": float(nll_se),
        "margin": float(margins.mean()) if n else float("nan"),
        "margin_se": float(margins.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
        "n": int(n),
        "n_ref_tokens": int(c_n.sum()),
    }


def metrics_from_items(items: pd.DataFrame) -> dict[str, Any]:
    """:func:`preference_metrics` of per-item records, plus the shares of pairs whose prompt, revised or raw
    response was truncated (``truncated_prompt``, ``truncated_chosen``, ``truncated_rejected``)."""
    out = preference_metrics(
        (items["chosen_lp"].to_numpy(), items["chosen_n"].to_numpy()),
        (items["rejected_lp"].to_numpy(), items["rejected_n"].to_numpy()),
    )
    for col in ("prompt", "chosen", "rejected"):
        out[f"truncated_{col}"] = float(items[f"{col}_truncated"].astype(bool).mean()) if len(items) else 0.0
    return out


def evaluate_heldout(
    base_model: str | Path,
    adapter: str | Path | None,
    rows: Sequence[dict[str, Any]],
    cfg: EvaluateConfig,
    *,
    loaded: tuple[Any, Any] | None = None,
    return_items: bool = False,
) -> dict[str, Any]:
    """Score held-out pairs (``prepare`` output rows) with base model + adapter (``None``: the base model itself);
    returns :func:`metrics_from_items` plus ``hardware`` (resolved precision, device, CPU model, threads:
    :func:`mdaq.hardware.hardware_record`), and with ``return_items=True`` the per-item records under ``items``
    (a DataFrame, :func:`item_records`).

    ``loaded``: an already loaded ``(tokenizer, model)`` of that base model + adapter (the evaluate stage loads
    once for scoring and generation); ``base_model`` and ``adapter`` are then not read.
    """
    if not rows:
        raise ValueError("evaluate_heldout: no held-out rows")
    if loaded is None:
        loaded = load_causal_lm(base_model, resolve_device(cfg.device), adapter=adapter)
    tok, model = loaded
    hardware = configure_torch(cfg.precision, str(next(model.parameters()).device), stage="evaluate")
    enc_c, enc_r = encode_heldout(tok, rows, cfg.max_seq_len)
    chosen = encoded_logprobs(model, tok, enc_c, cfg.batch_size, hardware["precision"], desc="score revised")
    rejected = encoded_logprobs(model, tok, enc_r, cfg.batch_size, hardware["precision"], desc="score raw")
    items = item_records(rows, chosen, rejected, (enc_c, enc_r))
    out = {**metrics_from_items(items), "hardware": hardware}
    if return_items:
        out["items"] = items
    return out
