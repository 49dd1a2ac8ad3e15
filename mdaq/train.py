"""LoRA supervised fine-tuning of a causal LM on selected samples (loss on response tokens only)."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.config import TrainConfig
from mdaq.io import write_json
from mdaq.lm import collate, encode_pair, format_prompt, load_causal_lm, resolve_device, response_logprobs
from mdaq.types import Sample

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (third-party code may draw from the legacy global state)
    torch.manual_seed(seed)


def _lora(model: Any, cfg: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules), task_type="CAUSAL_LM",
    )  # fmt: skip
    return get_peft_model(model, lora)


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    perm = rng.permutation(n)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


def train_lora(
    base_model: str | Path, samples: Sequence[Sample], cfg: TrainConfig, out_dir: str | Path, *, seed: int = 0
) -> Path:
    """Fine-tune a LoRA adapter on ``samples`` and save it (safetensors) with a training record.

    Parameters
    ----------
    base_model : path
        Local causal-LM folder (built by ``mdaq assets build``).
    samples : sequence of Sample
        The selected training samples.
    cfg : TrainConfig
        Hyperparameters (``params.yaml: train``).
    out_dir : path
        Adapter folder; written atomically (a temp sibling renamed at the end).
    seed : int
        Seeds data order, LoRA initialisation and dropout.

    Returns
    -------
    Path
        ``out_dir``, holding ``adapter_model.safetensors``, ``adapter_config.json`` and ``train_record.json``.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    if not samples:
        raise ValueError("train_lora: no training samples")
    seed_everything(seed)
    device = resolve_device(cfg.device)
    tok, model = load_causal_lm(base_model, device)
    model = _lora(model, cfg)
    encoded = [encode_pair(tok, format_prompt(s.instruction, s.input), s.output, cfg.max_seq_len) for s in samples]
    rng = np.random.default_rng(seed)
    n_steps = cfg.epochs * int(np.ceil(len(encoded) / (cfg.batch_size * cfg.grad_accum)))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, int(cfg.warmup_ratio * n_steps), n_steps)
    model.train()
    losses, n_tokens, t0 = [], 0, time.perf_counter()
    bar = tqdm(total=n_steps, desc=f"train {Path(out_dir).name}", unit="step")
    for _ in range(cfg.epochs):
        micro = _batches(len(encoded), cfg.batch_size, rng)
        for start in range(0, len(micro), cfg.grad_accum):
            group = micro[start : start + cfg.grad_accum]
            total = sum(encoded[i].n_response for b in group for i in b)
            step_loss = 0.0
            for b in group:
                batch = {k: v.to(device) for k, v in collate([encoded[i] for i in b], tok.pad_token_id).items()}
                token_lp, _ = response_logprobs(model, batch, cfg.precision)
                loss = -token_lp.sum() / max(total, 1)  # token-level mean over the whole accumulated step
                loss.backward()
                step_loss += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(step_loss)
            n_tokens += sum(len(encoded[i].input_ids) for b in group for i in b)
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.3f}")
    bar.close()
    seconds = time.perf_counter() - t0
    record = {
        "base_model": str(base_model), "n_samples": len(samples), "sample_ids": [s.id for s in samples],
        "config": dataclasses.asdict(cfg), "seed": seed, "device": device, "n_steps": len(losses),
        "losses": [round(x, 6) for x in losses], "seconds": round(seconds, 2),
        "tokens_per_s": round(n_tokens / max(seconds, 1e-9), 1), "method": "lora",
    }  # fmt: skip
    return _save(model, record, Path(out_dir))


def _save(model: Any, record: dict[str, Any], out_dir: Path) -> Path:
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    write_json(tmp / "train_record.json", record)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    log.info("saved adapter to %s (%d steps, %.1f s)", out_dir, record["n_steps"], record["seconds"])
    return out_dir
