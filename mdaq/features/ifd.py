"""Instruction-following difficulty (IFD) of pool samples from a causal LM (Cherry LLM, Superfiltering).

IFD(Q, A) = L(A | Q) / L(A), where L is the mean per-token negative log-likelihood of the response A, with the
instruction prompt Q in front (conditional) and without it (unconditional, a start token only). Both losses are
computed on exactly the same response tokens, so truncation cannot bias the ratio. Computed once per pool by the
``ifd`` stage, or per shard of a large pool by the feature engines (``mdaq features --ifd-model``), and read by the
``ifd`` selector through ``Pool.ifd``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.config import IFDConfig
from mdaq.hardware import configure_torch
from mdaq.io import atomic_path, write_json
from mdaq.models.lm import IGNORE, Encoded, encode_pair, format_prompt, load_causal_lm, resolve_device

FILES = ("ifd", "loss_conditional", "loss_unconditional")


def unconditional(encoded: Encoded, start_id: int) -> Encoded:
    """The response tokens of ``encoded`` after a single start token, all of them labelled."""
    response = [t for t in encoded.labels if t != IGNORE]
    return Encoded([start_id, *response], [IGNORE, *response])


def ifd_scores(model: Any, tok: Any, samples: Sequence[Any], cfg: IFDConfig) -> dict[str, np.ndarray]:
    """IFD and both mean losses per sample (NaN where the response has no token left after truncation).

    Parameters
    ----------
    model, tok
        A causal LM and its tokenizer (:func:`mdaq.models.lm.load_causal_lm`).
    samples : sequence of Sample
        The pool.
    cfg : IFDConfig
        ``params.yaml: ifd`` (sequence length, batch size, precision).
    """
    from mdaq.models.lm import encoded_logprobs

    start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if start is None:
        raise ValueError("ifd_scores: the tokenizer has neither a BOS nor an EOS token to start a sequence with")
    cond = [encode_pair(tok, format_prompt(s.instruction, s.input), s.output, cfg.max_seq_len) for s in samples]
    uncond = [unconditional(e, start) for e in cond]
    c_sum, c_n = encoded_logprobs(model, tok, cond, cfg.batch_size, cfg.precision, desc="ifd conditional")
    u_sum, u_n = encoded_logprobs(model, tok, uncond, cfg.batch_size, cfg.precision, desc="ifd unconditional")
    with np.errstate(invalid="ignore", divide="ignore"):
        loss_c = np.where(c_n > 0, -c_sum / np.maximum(c_n, 1), np.nan)
        loss_u = np.where(u_n > 0, -u_sum / np.maximum(u_n, 1), np.nan)
        ifd = np.where(loss_u > 0, loss_c / loss_u, np.nan)
    return {"ifd": ifd, "loss_conditional": loss_c, "loss_unconditional": loss_u}


class IFDScorer:
    """A causal LM loaded once (safetensors, no remote code) that scores any number of sample lists with
    :func:`ifd_scores`: the ``ifd`` stage scores a whole pool with it, the feature engines
    (:mod:`mdaq.features.engine`) one chunk of a pool shard at a time.

    Parameters
    ----------
    base_model : str or Path
        The causal LM folder.
    cfg : IFDConfig
        Sequence length, batch size, device and precision (``auto`` resolved here, for this device).

    Attributes
    ----------
    hardware : dict
        :func:`mdaq.hardware.configure_torch`'s record (the resolved precision among it).
    """

    def __init__(self, base_model: str | Path, cfg: IFDConfig) -> None:
        device = resolve_device(cfg.device)
        self.hardware = configure_torch(cfg.precision, device, stage="ifd")
        self.cfg = dataclasses.replace(cfg, precision=self.hardware["precision"])
        self.tok, self.model = load_causal_lm(base_model, device)

    def score(self, samples: Sequence[Any]) -> dict[str, np.ndarray]:
        """:func:`ifd_scores` of ``samples`` (anything with ``instruction``, ``input`` and ``output``)."""
        return ifd_scores(self.model, self.tok, samples, self.cfg)


def compute_ifd(base_model: str | Path, samples: Sequence[Any], cfg: IFDConfig) -> dict[str, Any]:
    """Load ``base_model`` (safetensors, no remote code) and score ``samples`` (:func:`ifd_scores`), in the
    precision ``cfg.precision`` resolves to on this device; the result also holds ``hardware``
    (:func:`mdaq.hardware.hardware_record`)."""
    scorer = IFDScorer(base_model, cfg)
    return {**scorer.score(samples), "hardware": scorer.hardware}


def ifd_needed(methods: Sequence[str]) -> bool:
    """Whether any of ``methods`` reads the pool's IFD feature (its selector declares ``"ifd"`` in ``requires``)."""
    from mdaq.selectors import SELECTORS

    return any("ifd" in SELECTORS.get(m).requires for m in methods)


def skip_ifd(out_dir: str | Path, methods: Sequence[str]) -> dict[str, Any]:
    """The ``ifd`` stage when no method of the profile reads IFD: write only ``ifd_record.json`` saying so (no
    ``ifd.npy``, so a selector that needs it fails naming the missing feature) and skip the base-model passes."""
    record = {"status": "skipped", "reason": f"no method of {list(methods)} reads IFD (add 'ifd' to methods)"}
    for name in FILES:
        (Path(out_dir) / f"{name}.npy").unlink(missing_ok=True)
    write_json(Path(out_dir) / "ifd_record.json", record)
    return record


def write_ifd(out_dir: str | Path, scores: dict[str, Any]) -> None:
    """Save ``ifd.npy``, ``loss_conditional.npy`` and ``loss_unconditional.npy`` (float32, atomically), and
    ``ifd_record.json`` (resolved precision and hardware) when ``scores`` holds ``hardware``."""
    for name in FILES:
        with atomic_path(Path(out_dir) / f"{name}.npy", suffix=".npy") as tmp:
            np.save(tmp, np.asarray(scores[name], dtype=np.float32), allow_pickle=False)
    if "hardware" in scores:
        write_json(Path(out_dir) / "ifd_record.json", {"n": len(scores["ifd"]), "hardware": scores["hardware"]})
