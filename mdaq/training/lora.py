"""LoRA supervised fine-tuning of a causal LM on selected samples (loss on response tokens only)."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.config import TrainConfig
from mdaq.hardware import configure_torch
from mdaq.io import atomic_dir, check_distinct, check_replaceable, write_json
from mdaq.models import checkpoint
from mdaq.models.checkpoint import Interrupted, seed_everything  # noqa: F401  (Interrupted re-exported: `stop_after` raises it)
from mdaq.models.checkpoint import run_fingerprint as run_fingerprint_
from mdaq.models.lm import (
    collate,
    encode_pair,
    format_prompt,
    load_causal_lm,
    resolve_device,
    response_logprobs,
)
from mdaq.models.loop import StepLoop
from mdaq.types import Sample

log = logging.getLogger(__name__)


def add_lora(model: Any, cfg: TrainConfig) -> Any:
    """Wrap ``model`` in a PEFT LoRA adapter with ``cfg``'s rank, alpha, dropout and target modules."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def run_fingerprint(
    base_model: str | Path, samples: Sequence[Sample], cfg: TrainConfig, seed: int, world_size: int = 1
) -> str:
    """Hash of everything that determines a training run; a checkpoint is resumed only when it matches."""
    return run_fingerprint_(Path(base_model).name, [s.id for s in samples], dataclasses.asdict(cfg), seed, world_size)


def _save_checkpoint(acc: Any, ckpt: Path, model: Any, opt: Any, sched: Any, state: dict[str, Any]) -> None:
    """Atomic checkpoint: LoRA weights (safetensors), optimizer/scheduler state and each process's RNG state."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    if acc.is_main_process:
        tmp = checkpoint.start(ckpt)
        weights = {k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(model).items()}
        save_file(weights, tmp / "adapter.safetensors")
    acc.wait_for_everyone()
    checkpoint.save_optim_state(checkpoint.tmp_dir(ckpt), opt, sched, rank=acc.process_index)
    acc.wait_for_everyone()
    if acc.is_main_process:
        checkpoint.commit(ckpt, state)
    acc.wait_for_everyone()


def _load_checkpoint(acc: Any, ckpt: Path, model: Any, opt: Any, sched: Any) -> None:
    """Restore :func:`_save_checkpoint` on every process."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    device = next(model.parameters()).device
    set_peft_model_state_dict(model, load_file(ckpt / "adapter.safetensors", device=str(device)))
    checkpoint.load_optim_state(ckpt, opt, sched, rank=acc.process_index)


def _all_reduce_grads(params: Sequence[Any], extra: float, world_size: int) -> float:
    """Sum the LoRA gradients (and the scalar ``extra``, the step loss) over processes in one flat all-reduce.

    The adapter is small (Llama-3-8B, r=8 on q/k/v/o: 14M parameters), so one collective per optimizer step costs
    little, needs no DDP wrapper around the model (whose forward :func:`mdaq.models.lm.response_logprobs` bypasses to
    apply the LM head at response positions only), and makes ``k`` processes compute exactly the gradient that
    one process accumulating the same micro-batches computes.
    """
    import torch

    if world_size == 1:
        return extra
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.flatten() for g in grads] + [torch.tensor([extra], device=grads[0].device)])
    torch.distributed.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        p.grad = flat[offset : offset + g.numel()].view_as(g).clone()
        offset += g.numel()
    return float(flat[-1])


def train_lora(
    base_model: str | Path,
    samples: Sequence[Sample],
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    seed: int = 0,
    ckpt_dir: str | Path | None = None,
    stop_after: int | None = None,
    on_model: Callable[[Any, Any], None] | None = None,
) -> Path:
    """Fine-tune a LoRA adapter on ``samples`` and save it (safetensors) with a training record.

    One code path for a laptop and a GPU node: run in-process on one device, or under ``accelerate launch`` (see
    ``configs/accelerate/``) as ``k`` processes. Each optimizer step takes ``grad_accum * k`` micro-batches of
    ``batch_size``; process ``r`` runs every ``k``-th of them and the LoRA gradients are summed over processes, so
    ``k`` processes reach the adapter one process reaches with ``grad_accum * k`` (up to float summation order).

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
    on_model : callable, optional
        Called as ``on_model(tokenizer, model)`` with the trained model (base + LoRA, in eval mode) once the adapter
        is saved, in a one-process run that trained: the pipeline scores with it instead of loading the base model
        and the saved adapter again (the same weights: the adapter is saved in float32). Not called when the adapter
        was already there (nothing trained) or under ``accelerate launch``.

    Returns
    -------
    Path
        ``out_dir``, holding ``adapter_model.safetensors``, ``adapter_config.json`` and ``train_record.json``.
    """
    import torch
    from accelerate import Accelerator
    from transformers import get_cosine_schedule_with_warmup

    if not samples:
        raise ValueError("train_lora: no training samples")
    check_replaceable(Path(out_dir), (ADAPTER_RECORD,))  # first, not after training: an hour is not lost to it
    if ckpt_dir:
        check_replaceable(Path(ckpt_dir), (checkpoint.STATE,))
    samples = sorted(samples, key=lambda s: s.id)  # the same set in any order trains the same adapter
    requested = resolve_device(cfg.device)
    acc = Accelerator(cpu=requested == "cpu")  # under `accelerate launch`: one process per device
    world, rank = acc.num_processes, acc.process_index
    # accelerate's state is a per-process singleton: a second in-process run keeps the first run's device (a CPU
    # run, then a `device: cuda` one, trained on the CPU). One process: the configured device; launched: its own.
    device = acc.device if world > 1 else torch.device(requested)
    seed_everything(seed)  # same LoRA initialisation on every process
    hardware = configure_torch(cfg.precision, str(device), stage=f"train {Path(out_dir).name}")
    precision = hardware["precision"]
    # the resolved precision, not "auto": a checkpoint from a bf16 machine is not resumed in fp32, nor vice versa
    fingerprint = run_fingerprint(base_model, samples, dataclasses.replace(cfg, precision=precision), seed, world)
    if world == 1 and _finished(Path(out_dir), fingerprint):
        log.info("%s already holds this run's adapter (fingerprint %s): not retrained", out_dir, fingerprint)
        return Path(out_dir)
    tok, model = load_causal_lm(base_model, device, dtype=cfg.base_dtype)
    model = add_lora(model, cfg)
    torch.manual_seed(seed + 1_000_003 * rank)  # independent dropout streams per process; rank 0 as one process
    encoded = [encode_pair(tok, format_prompt(s.instruction, s.input), s.output, cfg.max_seq_len) for s in samples]
    lengths = [len(e.input_ids) for e in encoded]
    group_size = cfg.grad_accum * world  # micro-batches per optimizer step, over all processes
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    loop = StepLoop(lengths, cfg.batch_size, group_size, cfg.epochs, seed, cfg.group_by_length, params, opt, None)
    loop.sched = get_cosine_schedule_with_warmup(opt, int(cfg.warmup_ratio * loop.n_steps), loop.n_steps)
    n_tokens = 0
    ckpt = Path(ckpt_dir) if ckpt_dir else None
    state = checkpoint.matching_checkpoint(ckpt, fingerprint) if acc.is_main_process else None
    acc.wait_for_everyone()  # rank 0 may have deleted another run's checkpoint
    if ckpt is not None and state is None:
        state = checkpoint.matching_checkpoint(ckpt, fingerprint)
    if state is not None:
        _load_checkpoint(acc, ckpt, model, opt, loop.sched)
        loop.step, loop.losses, n_tokens = state["step"], state["losses"], state["n_tokens"]
        log.info("resumed LoRA training from %s at step %d", ckpt, loop.step)
    model.train()
    start_step = loop.step

    def loss_of(group: list[np.ndarray]) -> float:
        """Forward and backward over this process's share of the step's micro-batches; the step's mean loss."""
        nonlocal n_tokens
        total = sum(encoded[i].n_response for b in group for i in b)  # normaliser of the whole optimizer step
        step_loss = 0.0
        for b in group[rank::world]:
            batch = {k: v.to(device) for k, v in collate([encoded[i] for i in b], tok.pad_token_id).items()}
            token_lp, _ = response_logprobs(model, batch, precision)
            loss = -token_lp.sum() / max(total, 1)  # token-level mean over the whole accumulated step
            loss.backward()
            step_loss += float(loss.detach())
        n_tokens += sum(len(encoded[i].input_ids) for b in group for i in b)
        return _all_reduce_grads(params, step_loss, world)

    def save_checkpoint(step: int) -> None:
        state = {"step": step, "losses": loop.losses, "n_tokens": n_tokens, "fingerprint": fingerprint}
        _save_checkpoint(acc, ckpt, model, opt, loop.sched, state)

    seconds = loop.run(
        loss_of,
        desc=f"train {Path(out_dir).name}",
        checkpoint=save_checkpoint if ckpt is not None else None,
        checkpoint_every=cfg.checkpoint_every,
        stop_after=stop_after,
        show=acc.is_local_main_process,
        loss_format=".3f",
    )
    step, losses = loop.step, loop.losses
    record = {
        "base_model": str(base_model),
        "n_samples": len(samples),
        "sample_ids": [s.id for s in samples],
        "config": dataclasses.asdict(cfg),
        "seed": seed,
        "device": str(device),
        "world_size": world,
        "effective_batch_size": cfg.batch_size * group_size,
        "n_steps": len(losses),
        "n_truncated": sum(e.response_truncated for e in encoded),
        "share_truncated": sum(e.response_truncated for e in encoded) / len(encoded),
        "fingerprint": fingerprint,
        "losses": losses,
        "seconds_this_run": round(seconds, 2),
        "resumed_from_step": start_step,
        "tokens_per_s": round(n_tokens * (step - start_step) / max(step, 1) / max(seconds, 1e-9), 1),
        "method": "lora",
        "hardware": hardware,
    }
    out = Path(out_dir)
    if acc.is_main_process:
        _save(model, record, out)
        if ckpt is not None:
            shutil.rmtree(ckpt, ignore_errors=True)
    acc.wait_for_everyone()
    if on_model is not None and world == 1:
        opt.zero_grad(set_to_none=True)  # the gradients live on the parameters the caller keeps; free them
        model.eval()
        on_model(tok, model)
    return out


def _finished(out_dir: Path, fingerprint: str) -> bool:
    """Whether ``out_dir`` holds a saved adapter of the run ``fingerprint`` (an interrupted stage rerun by
    ``dvc repro`` then goes on to evaluation without training again)."""
    record = out_dir / "train_record.json"
    if not (record.is_file() and (out_dir / "adapter_model.safetensors").is_file()):
        return False
    try:
        return json.loads(record.read_text(encoding="utf-8")).get("fingerprint") == fingerprint
    except (OSError, ValueError):
        return False


def sort_adapter_config(folder: Path) -> None:
    """Rewrite ``adapter_config.json`` with ``target_modules`` sorted: peft stores them as a set, so the file's bytes
    (and the folder's hash) otherwise change with Python's string-hash seed from one process to the next."""
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")


ADAPTER_RECORD = "train_record.json"  # the file that marks an adapter folder as mdaq's (mdaq.io.atomic_dir)


def _save(model: Any, record: dict[str, Any], out_dir: Path) -> Path:
    with atomic_dir(out_dir, owned_by=(ADAPTER_RECORD,)) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        sort_adapter_config(tmp)
        write_json(tmp / ADAPTER_RECORD, record)
    log.info("saved adapter to %s (%d steps, %.1f s)", out_dir, record["n_steps"], record["seconds_this_run"])
    return out_dir


def train_from_files(
    base_model: str | Path,
    pool_path: str | Path,
    selection_path: str | Path,
    out_dir: str | Path,
    params_path: str | Path = "params.yaml",
    ckpt_dir: str | Path | None = None,
    seed: int | None = None,
    on_model: Callable[[Any, Any], None] | None = None,
) -> Path:
    """The pipeline's training step: the selected samples of a pool, ``params.yaml: train`` and ``seed`` (default
    ``params.yaml: seed``; the pipeline passes each of ``seeds``).

    ``ckpt_dir`` defaults to ``<out_dir>.ckpt`` (beside the DVC output, so ``dvc repro`` keeps it); ``on_model``:
    see :func:`train_lora`.
    """
    from mdaq.config import load_params
    from mdaq.errors import DataError
    from mdaq.io import read_samples
    from mdaq.selectors import read_selection

    inputs = {"base model": base_model, "pool": pool_path, "selection": selection_path, "params": params_path}
    check_distinct(out_dir, inputs, what="the adapter folder")
    params = load_params(params_path)
    by_id = {s.id: s for s in read_samples(pool_path)}
    ids = read_selection(selection_path)
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DataError(selection_path, f"{len(missing)} selected ids are not in {pool_path}", record=missing[0])
    ckpt = ckpt_dir if ckpt_dir is not None else f"{out_dir}.ckpt"
    seed = params.seed if seed is None else int(seed)
    samples = [by_id[i] for i in ids]
    return train_lora(base_model, samples, params.train, out_dir, seed=seed, ckpt_dir=ckpt, on_model=on_model)


def launch_command(accelerate_config: str | Path, args: Sequence[str]) -> list[str]:
    """``accelerate launch`` command line that runs ``python -m mdaq train <args>`` under ``accelerate_config``."""
    import sys

    config = Path(accelerate_config)
    if not config.is_file():
        raise FileNotFoundError(f"accelerate config {config} not found (train.accelerate_config in params.yaml)")
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "-m",
        "mdaq",
        "train",
        *args,
    ]


def run_training_stage(
    base_model: str | Path,
    pool_path: str | Path,
    selection_path: str | Path,
    out_dir: str | Path,
    params_path: str | Path = "params.yaml",
    seed: int | None = None,
    on_model: Callable[[Any, Any], None] | None = None,
) -> Path:
    """Train in this process, or, when ``train.accelerate_config`` is set, through ``accelerate launch`` (one
    process per device, the same :func:`train_lora` in each). ``on_model`` (see :func:`train_lora`) is called only
    in this process."""
    import subprocess

    from mdaq.config import load_params

    params = load_params(params_path)
    if not params.train.accelerate_config:
        paths = (base_model, pool_path, selection_path, out_dir, params_path)
        return train_from_files(*paths, seed=seed, on_model=on_model)
    args = [
        "--base-model",
        str(base_model),
        "--pool",
        str(pool_path),
        "--selection",
        str(selection_path),
        "--out",
        str(out_dir),
        "--params",
        str(params_path),
        *(["--seed", str(seed)] if seed is not None else []),
    ]
    cmd = launch_command(params.train.accelerate_config, args)
    log.info("launching: %s", " ".join(cmd))
    subprocess.run(cmd, check=True)
    return Path(out_dir)
