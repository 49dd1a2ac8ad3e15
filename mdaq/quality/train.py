"""Train the QSM on MIDB revision pairs, with checkpoints that resume to the same final model."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.config import QSMConfig
from mdaq.data.split import lang_rng
from mdaq.hardware import configure_torch
from mdaq.io import atomic_dir, check_replaceable
from mdaq.models import checkpoint
from mdaq.models.checkpoint import Interrupted  # noqa: F401  (re-exported: `stop_after` raises it)
from mdaq.models.loop import StepLoop
from mdaq.quality.model import CONFIG_FILE, QualityModel, anchor_text

log = logging.getLogger(__name__)


def triplets(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    """(anchor, positive, negative) texts from ``qsm_train`` rows: revised prompt, revised and raw responses."""
    anchors = [anchor_text(r["revised_instruction"], r["revised_input"]) for r in rows]
    return anchors, [r["revised_response"] for r in rows], [r["raw_response"] for r in rows]


def select_training_rows(rows_by_lang: dict[str, list[dict]], cfg: QSMConfig, seed: int) -> list[dict]:
    """Rows of the training languages (all but ``cfg.unseen_langs``), at most ``cfg.max_pairs_per_lang`` each."""
    out = []
    for lang in sorted(rows_by_lang):
        if lang in cfg.unseen_langs:
            continue
        rows = rows_by_lang[lang]
        if 0 < cfg.max_pairs_per_lang < len(rows):
            rng = lang_rng(seed, lang, "qsm-train-subsample")
            keep = np.sort(rng.choice(len(rows), cfg.max_pairs_per_lang, replace=False))
            rows = [rows[i] for i in keep]
        out += rows
    return out


def batch_loss(model: QualityModel, batch: Sequence[dict], cfg: QSMConfig) -> Any:
    """The training loss of one batch of ``qsm_train`` rows: triplet margin loss, or CaR's MSE for ``regression``."""
    import torch

    a, p, n = triplets(batch)
    if model.kind == "triplet":
        ea = model.embed([model.query_prefix + t for t in a])
        ep, en = model.embed([model.passage_prefix + t for t in p + n]).split(len(p))  # one pass: similar lengths
        d_pos, d_neg = (ea - ep).norm(dim=-1), (ea - en).norm(dim=-1)
        return torch.relu(d_pos - d_neg + cfg.margin).mean()
    scores = model.raw_scores(a + a, p + n)  # CaR-style regression: revised -> 1, raw -> 0
    target = torch.cat([torch.ones(len(a)), torch.zeros(len(a))]).to(scores.device)
    return torch.nn.functional.mse_loss(scores, target)


def _response_lengths(model: QualityModel, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Token count of the longer response of each pair (capped at ``max_len``): the padded width of a batch's
    positive + negative pass, the bulk of a triplet step."""
    _, pos, neg = triplets(rows)
    ids = model.tokenizer_([model.passage_prefix + t for t in pos + neg], truncation=True, max_length=model.max_len)
    n = [len(x) for x in ids["input_ids"]]
    return [max(a, b) for a, b in zip(n[: len(rows)], n[len(rows) :], strict=True)]


def run_fingerprint(encoder: str | Path, rows: Sequence[dict[str, Any]], cfg: QSMConfig, seed: int) -> str:
    """Hash of everything that determines a training run; a checkpoint is resumed only if it matches."""
    ids = [(r["lang"], r["source_index"]) for r in rows]
    return checkpoint.run_fingerprint(str(encoder), ids, dataclasses.asdict(cfg), seed)


def _save_checkpoint(
    ckpt: Path, model: QualityModel, opt: Any, sched: Any, step: int, losses: list, fingerprint: str
) -> None:
    """Atomic checkpoint (:mod:`mdaq.models.checkpoint`): model folder, optimizer/scheduler/RNG state, step counter."""
    tmp = checkpoint.start(ckpt)
    model.save(tmp / "model")
    checkpoint.save_optim_state(tmp, opt, sched)
    checkpoint.commit(ckpt, {"step": step, "losses": losses, "fingerprint": fingerprint})


def _load_checkpoint(ckpt: Path, state: dict[str, Any], model: QualityModel, opt: Any, sched: Any) -> tuple[int, list]:
    """Restore a checkpoint written by :func:`_save_checkpoint` (safetensors and ``weights_only`` loads)."""
    from safetensors.torch import load_file

    model.model_.load_state_dict(
        load_file(ckpt / "model" / "model.safetensors", device=str(model.device)), strict=False
    )
    if model.head_ is not None:
        model.head_.load_state_dict(load_file(ckpt / "model" / "qsm_head.safetensors", device=str(model.device)))
    checkpoint.load_optim_state(ckpt, opt, sched)
    log.info("resumed QSM training from %s at step %d", ckpt, state["step"])
    return state["step"], state["losses"]


def train_qsm(
    encoder: str | Path,
    rows: Sequence[dict[str, Any]],
    cfg: QSMConfig,
    out_dir: str | Path,
    *,
    seed: int = 0,
    ckpt_dir: str | Path | None = None,
    stop_after: int | None = None,
) -> QualityModel:
    """Fine-tune a QSM on revision pairs and save it to ``out_dir``.

    Parameters
    ----------
    encoder : path
        Base encoder folder.
    rows : sequence of dict
        ``qsm_train`` rows (fields of :class:`mdaq.data.midb.RevisionPair`).
    cfg : QSMConfig
        ``params.yaml: qsm``.
    out_dir : path
        Final model folder (written at the end).
    seed : int
        Seeds data order, dropout and any new head.
    ckpt_dir : path, optional
        Checkpoint folder, rewritten every ``cfg.checkpoint_every`` steps; an existing one is resumed, and the
        resumed run reaches the same final weights as an uninterrupted one.
    stop_after : int, optional
        Raise :class:`Interrupted` after this many steps (simulates a crash in tests).
    """
    import torch
    from transformers import get_cosine_schedule_with_warmup

    from mdaq.models.checkpoint import seed_everything

    if not rows:
        raise ValueError("train_qsm: no training pairs")
    check_replaceable(Path(out_dir), QSM_FILES)  # before training: never replace a folder mdaq did not write
    if ckpt_dir:
        check_replaceable(Path(ckpt_dir), (checkpoint.STATE,))
    seed_everything(seed)
    model = QualityModel(
        encoder,
        kind=cfg.kind,
        pooling=cfg.pooling,
        max_len=cfg.max_len,
        device=cfg.device,
        precision=cfg.precision,
        dropout=cfg.dropout,
    )
    model.load_encoder()
    hardware = configure_torch(cfg.precision, model.device, stage="qsm train")
    if cfg.freeze_embeddings:
        model.model_.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in model.model_.parameters() if p.requires_grad]
    params += list(model.head_.parameters()) if model.head_ is not None else []
    lengths = _response_lengths(model, rows) if cfg.group_by_length > 0 else [0] * len(rows)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    loop = StepLoop(lengths, cfg.batch_size, 1, cfg.epochs, seed, cfg.group_by_length, params, opt, None)
    loop.sched = get_cosine_schedule_with_warmup(opt, int(cfg.warmup_ratio * loop.n_steps), loop.n_steps)
    ckpt = Path(ckpt_dir) if ckpt_dir else None
    # the resolved precision, not "auto": a checkpoint is resumed only in the arithmetic that wrote it
    fingerprint = run_fingerprint(encoder, rows, dataclasses.replace(cfg, precision=hardware["precision"]), seed)
    state = checkpoint.matching_checkpoint(ckpt, fingerprint)  # another run's checkpoint is deleted
    if state is not None:
        loop.step, loop.losses = _load_checkpoint(ckpt, state, model, opt, loop.sched)
    model.model_.train()
    start_step = loop.step

    def loss_of(group: list[np.ndarray]) -> float:
        loss = batch_loss(model, [rows[i] for i in group[0]], cfg)
        loss.backward()
        return float(loss.detach())

    def save_checkpoint(step: int) -> None:
        _save_checkpoint(ckpt, model, opt, loop.sched, step, loop.losses, fingerprint)

    seconds = loop.run(
        loss_of,
        desc="qsm train",
        checkpoint=save_checkpoint if ckpt is not None else None,
        checkpoint_every=cfg.checkpoint_every,
        checkpoint_last=True,  # a finished run's checkpoint lets a rerun of the stage skip straight to saving
        stop_after=stop_after,
    )
    step, losses, n_steps = loop.step, loop.losses, loop.n_steps
    model.model_.eval()
    model.train_record_ = {
        "n_pairs": len(rows),
        "langs": dict(Counter(r["lang"] for r in rows)),
        "seed": seed,
        "n_steps": n_steps,
        "config": dataclasses.asdict(cfg),
        "losses": losses,
        "seconds_this_run": round(seconds, 2),
        "pairs_per_s": round((step - start_step) * cfg.batch_size / max(seconds, 1e-9), 2),
        "hardware": hardware,
    }
    _save_final(model, Path(out_dir))
    return model


SKIP_RECORD = "train_record.json"  # the only file of a scorer folder with nothing to train
QSM_FILES = (CONFIG_FILE, SKIP_RECORD)  # either marks a QSM folder as mdaq's (mdaq.io.atomic_dir)


def _save_final(model: QualityModel, out_dir: Path) -> None:
    with atomic_dir(out_dir, owned_by=QSM_FILES) as tmp:
        model.save(tmp)


def skip_training(out_dir: str | Path, reason: str, ckpt_dir: str | Path | None = None) -> dict[str, Any]:
    """A scorer stage with nothing to train (no method of the profile ranks with it): ``out_dir`` holds only
    ``train_record.json`` saying why, so a stage that loads the scorer fails naming it; ``ckpt_dir`` (a declared
    output of the stage) is created empty. Returns the record."""
    from mdaq.io import write_json

    if ckpt_dir is not None:
        Path(ckpt_dir).mkdir(parents=True, exist_ok=True)
    record = {"status": "skipped", "reason": reason, "losses": []}
    with atomic_dir(out_dir, owned_by=QSM_FILES) as tmp:
        write_json(tmp / SKIP_RECORD, record)
    return record
