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


def _epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Micro-batches of one epoch: a permutation that depends only on (seed, epoch), so a resumed run replays the
    remaining batches exactly."""
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


class Interrupted(RuntimeError):
    """Raised by ``stop_after`` to simulate a killed run (tests)."""


def run_fingerprint(base_model: str | Path, samples: Sequence[Sample], cfg: TrainConfig, seed: int) -> str:
    """Hash of everything that determines a training run; a checkpoint is resumed only when it matches."""
    import hashlib
    import json

    blob = json.dumps([Path(base_model).name, [s.id for s in samples], dataclasses.asdict(cfg), seed],
                      sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _save_checkpoint(ckpt: Path, model: Any, opt: Any, sched: Any, state: dict[str, Any]) -> None:
    """Atomic checkpoint: LoRA weights (safetensors), optimizer/scheduler/RNG state (tensors), ``state.json``."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(model).items()}
    save_file(weights, tmp / "adapter.safetensors")
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    torch.save(sched.state_dict(), tmp / "scheduler.pt")
    torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
    write_json(tmp / "state.json", state)
    shutil.rmtree(ckpt, ignore_errors=True)
    tmp.rename(ckpt)


def _load_checkpoint(ckpt: Path, model: Any, opt: Any, sched: Any) -> dict[str, Any]:
    """Restore :func:`_save_checkpoint` (``weights_only`` loads: tensors and plain types, no arbitrary unpickling)."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from mdaq.io import read_json

    device = next(model.parameters()).device
    set_peft_model_state_dict(model, load_file(ckpt / "adapter.safetensors", device=str(device)))
    opt.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
    sched.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=True))
    torch.set_rng_state(torch.load(ckpt / "rng.pt", weights_only=True)["torch"])
    state = read_json(ckpt / "state.json")
    log.info("resumed LoRA training from %s at step %d", ckpt, state["step"])
    return state


def train_lora(
    base_model: str | Path, samples: Sequence[Sample], cfg: TrainConfig, out_dir: str | Path, *, seed: int = 0,
    ckpt_dir: str | Path | None = None, stop_after: int | None = None,
) -> Path:  # fmt: skip
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
    ckpt_dir : path, optional
        Checkpoint folder, rewritten every ``cfg.checkpoint_every`` optimizer steps (0: never). A checkpoint of
        the same run (same base model, sample ids, config and seed) is resumed and reaches the same adapter as an
        uninterrupted run; one of another run is deleted. Removed after the adapter is saved.
    stop_after : int, optional
        Raise :class:`Interrupted` after this many steps of this call (simulates a crash in tests).

    Returns
    -------
    Path
        ``out_dir``, holding ``adapter_model.safetensors``, ``adapter_config.json`` and ``train_record.json``.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    from mdaq.io import read_json

    if not samples:
        raise ValueError("train_lora: no training samples")
    seed_everything(seed)
    device = resolve_device(cfg.device)
    tok, model = load_causal_lm(base_model, device)
    model = _lora(model, cfg)
    encoded = [encode_pair(tok, format_prompt(s.instruction, s.input), s.output, cfg.max_seq_len) for s in samples]
    n_micro = int(np.ceil(len(encoded) / cfg.batch_size))
    per_epoch = int(np.ceil(n_micro / cfg.grad_accum))
    n_steps = cfg.epochs * per_epoch
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, int(cfg.warmup_ratio * n_steps), n_steps)
    fingerprint = run_fingerprint(base_model, samples, cfg, seed)
    step, losses, n_tokens = 0, [], 0
    ckpt = Path(ckpt_dir) if ckpt_dir else None
    if ckpt is not None and (ckpt / "state.json").is_file():
        if read_json(ckpt / "state.json").get("fingerprint") == fingerprint:
            state = _load_checkpoint(ckpt, model, opt, sched)
            step, losses, n_tokens = state["step"], state["losses"], state["n_tokens"]
        else:  # another run's checkpoint: resuming it would mix two runs
            log.warning("ignoring checkpoint %s of a different run", ckpt)
            shutil.rmtree(ckpt)
    model.train()
    t0, start_step = time.perf_counter(), step
    bar = tqdm(total=n_steps, initial=step, desc=f"train {Path(out_dir).name}", unit="step")
    micro: list[np.ndarray] = []
    while step < n_steps:
        epoch, k = divmod(step, per_epoch)
        if k == 0 or not micro:
            micro = _epoch_batches(len(encoded), cfg.batch_size, seed, epoch)
        group = micro[k * cfg.grad_accum : (k + 1) * cfg.grad_accum]
        total = sum(encoded[i].n_response for b in group for i in b)
        step_loss = 0.0
        for b in group:
            batch = {k_: v.to(device) for k_, v in collate([encoded[i] for i in b], tok.pad_token_id).items()}
            token_lp, _ = response_logprobs(model, batch, cfg.precision)
            loss = -token_lp.sum() / max(total, 1)  # token-level mean over the whole accumulated step
            loss.backward()
            step_loss += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(round(step_loss, 6))
        n_tokens += sum(len(encoded[i].input_ids) for b in group for i in b)
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.3f}")
        if ckpt is not None and cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0 and step < n_steps:
            state = {"step": step, "losses": losses, "n_tokens": n_tokens, "fingerprint": fingerprint}
            _save_checkpoint(ckpt, model, opt, sched, state)
        if stop_after is not None and step - start_step >= stop_after and step < n_steps:
            raise Interrupted(f"stopped after step {step}")
    bar.close()
    seconds = time.perf_counter() - t0
    record = {
        "base_model": str(base_model), "n_samples": len(samples), "sample_ids": [s.id for s in samples],
        "config": dataclasses.asdict(cfg), "seed": seed, "device": device, "n_steps": len(losses),
        "losses": losses, "seconds_this_run": round(seconds, 2), "resumed_from_step": start_step,
        "tokens_per_s": round(n_tokens * (step - start_step) / max(step, 1) / max(seconds, 1e-9), 1),
        "method": "lora",
    }  # fmt: skip
    out = _save(model, record, Path(out_dir))
    if ckpt is not None:
        shutil.rmtree(ckpt, ignore_errors=True)
    return out


def _save(model: Any, record: dict[str, Any], out_dir: Path) -> Path:
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    write_json(tmp / "train_record.json", record)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    log.info("saved adapter to %s (%d steps, %.1f s)", out_dir, record["n_steps"], record["seconds_this_run"])
    return out_dir
