"""Judge-free evaluation on held-out MIDB pairs: expert-preference accuracy and response NLL of a fine-tuned model."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.config import EvaluateConfig
from mdaq.hardware import configure_torch
from mdaq.models.lm import (
    encode_pair,
    encoded_logprobs,
    format_prompt,
    load_causal_lm,
    resolve_device,
)

log = logging.getLogger(__name__)


def sequence_logprobs(model: Any, tok: Any, prompts: Sequence[str], responses: Sequence[str], cfg: EvaluateConfig):
    """Summed log-probability and token count of each response given its prompt (no gradients).

    Returns
    -------
    (sum_logprob, n_tokens) : tuple of numpy arrays, one entry per (prompt, response)
    """
    encoded = [encode_pair(tok, p, r, cfg.max_seq_len) for p, r in zip(prompts, responses, strict=True)]
    return encoded_logprobs(model, tok, encoded, cfg.batch_size, cfg.precision)


def preference_metrics(chosen: tuple[np.ndarray, np.ndarray], rejected: tuple[np.ndarray, np.ndarray]) -> dict:
    """Expert-preference accuracy (length-normalised log-likelihood, chosen vs rejected) and chosen-response NLL.

    ``expert_pref_acc`` = share of pairs whose expert-revised response has the higher mean per-token log-prob
    (ties count half); ``ref_nll`` = per-token NLL over all revised-response tokens (lower is better).
    """
    (c_sum, c_n), (r_sum, r_n) = chosen, rejected
    c_norm, r_norm = c_sum / np.maximum(c_n, 1), r_sum / np.maximum(r_n, 1)
    wins = (c_norm > r_norm).astype(float) + 0.5 * (c_norm == r_norm)
    n = len(wins)
    acc = float(wins.mean()) if n else float("nan")
    return {
        "expert_pref_acc": acc,
        "expert_pref_acc_se": float(np.sqrt(acc * (1 - acc) / n)) if n else float("nan"),
        "ref_nll": float(-c_sum.sum() / max(c_n.sum(), 1)),
        "n": int(n),
        "n_ref_tokens": int(c_n.sum()),
    }


def evaluate_heldout(
    base_model: str | Path,
    adapter: str | Path | None,
    rows: Sequence[dict[str, Any]],
    cfg: EvaluateConfig,
    *,
    loaded: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """Score held-out pairs (``prepare`` output rows) with base model + adapter; returns :func:`preference_metrics`
    plus ``hardware`` (resolved precision, device, CPU model, threads: :func:`mdaq.hardware.hardware_record`).

    ``loaded``: an already loaded ``(tokenizer, model)`` of that base model + adapter (the evaluate stage loads
    once for scoring and generation); ``base_model`` and ``adapter`` are then not read.
    """
    if not rows:
        raise ValueError("evaluate_heldout: no held-out rows")
    if loaded is None:
        loaded = load_causal_lm(base_model, resolve_device(cfg.device), adapter=adapter)
    tok, model = loaded
    hardware = configure_torch(cfg.precision, str(next(model.parameters()).device), stage="evaluate")
    cfg = dataclasses.replace(cfg, precision=hardware["precision"])
    prompts = [format_prompt(r["instruction"], r.get("input", "")) for r in rows]
    chosen = sequence_logprobs(model, tok, prompts, [r["chosen"] for r in rows], cfg)
    rejected = sequence_logprobs(model, tok, prompts, [r["rejected"] for r in rows], cfg)
    return {**preference_metrics(chosen, rejected), "hardware": hardware}
