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
from mdaq.quality import early_stop
from mdaq.quality.model import CONFIG_FILE, QualityModel, anchor_text

log = logging.getLogger(__name__)


def triplets(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    """(anchor, positive, negative) texts from ``qsm_train`` rows: revised prompt, revised and raw responses."""
    anchors = [anchor_text(r["revised_instruction"], r["revised_input"]) for r in rows]
    return anchors, [r["revised_response"] for r in rows], [r["raw_response"] for r in rows]


def is_not_longer(row: dict[str, Any]) -> bool:
    """Whether a ``qsm_train`` row's revised response is not longer (in characters) than its raw one: the pairs a
    length scorer cannot get right (``rev_not_longer`` in :func:`mdaq.quality.evaluate.length_strata`)."""
    return len(row["revised_response"]) <= len(row["raw_response"])


def select_training_rows(rows_by_lang: dict[str, list[dict]], cfg: QSMConfig, seed: int) -> list[dict]:
    """Rows of the training languages (all but ``cfg.unseen_langs``), at most ``cfg.max_pairs_per_lang`` each.

    With ``cfg.length_balance = b > 0`` each language's ``max_pairs_per_lang`` pairs are drawn as ``round(b · n)``
    where the revision is not longer (:func:`is_not_longer`) and the rest where it is longer, each part a seeded
    draw without replacement; a part that runs short is filled from the other, so the count stays the same.
    Revisions are longer in ~83% of MIDB pairs, which a triplet loss can learn as "longer is better".

    Raises
    ------
    ValueError
        ``length_balance > 0`` with ``max_pairs_per_lang = 0`` (every pair: nothing to choose).
    """
    if cfg.length_balance > 0 and cfg.max_pairs_per_lang <= 0:
        raise ValueError("qsm.length_balance needs qsm.max_pairs_per_lang > 0 (it chooses which pairs are drawn)")
    out = []
    for lang in sorted(rows_by_lang):
        if lang in cfg.unseen_langs:
            continue
        rows = rows_by_lang[lang]
        if cfg.length_balance > 0:
            keep = _balanced_positions(
                rows, cfg.max_pairs_per_lang, cfg.length_balance, lang_rng(seed, lang, "qsm-train-balance")
            )
            rows = [rows[i] for i in keep]
        elif 0 < cfg.max_pairs_per_lang < len(rows):
            rng = lang_rng(seed, lang, "qsm-train-subsample")
            keep = np.sort(rng.choice(len(rows), cfg.max_pairs_per_lang, replace=False))
            rows = [rows[i] for i in keep]
        out += rows
    return out


def _balanced_positions(rows: Sequence[dict], limit: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of ``min(limit, len(rows))`` rows, ``round(share · n)`` of them not longer (see
    :func:`select_training_rows`)."""
    flags = np.array([is_not_longer(r) for r in rows], dtype=bool)
    short_pos, long_pos = np.flatnonzero(flags), np.flatnonzero(~flags)
    n = min(limit, len(rows))
    n_short = min(int(round(share * n)), len(short_pos))
    n_long = min(n - n_short, len(long_pos))
    n_short = min(n - n_long, len(short_pos))  # the longer side ran short: fill from the other
    picked = [rng.choice(short_pos, n_short, replace=False), rng.choice(long_pos, n_long, replace=False)]
    return np.sort(np.concatenate(picked))


def batch_loss(model: QualityModel, batch: Sequence[dict], cfg: QSMConfig) -> Any:
    """The training loss of one batch of ``qsm_train`` rows: triplet margin loss (``triplet``), margin ranking loss
    on the head's scores (``cross``), or CaR's MSE (``regression``)."""
    import torch

    a, p, n = triplets(batch)
    if model.kind == "triplet":
        ea = model.embed([model.query_prefix + t for t in a])
        ep, en = model.embed([model.passage_prefix + t for t in p + n]).split(len(p))  # one pass: similar lengths
        d_pos, d_neg = (ea - ep).norm(dim=-1), (ea - en).norm(dim=-1)
        return torch.relu(d_pos - d_neg + cfg.margin).mean()
    if model.kind == "cross":  # max(margin - (s(revised) - s(raw)), 0): the revision must win by the margin
        s_pos, s_neg = model.raw_scores(a + a, p + n).split(len(a))
        return torch.relu(cfg.margin - (s_pos - s_neg)).mean()
    scores = model.raw_scores(a + a, p + n)  # CaR-style regression: revised -> 1, raw -> 0
    target = torch.cat([torch.ones(len(a)), torch.zeros(len(a))]).to(scores.device)
    return torch.nn.functional.mse_loss(scores, target)


def _response_lengths(model: QualityModel, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Token count of the longer response of each pair (capped at ``max_len``): the padded width of a batch's
    positive + negative pass, the bulk of a triplet step; for ``cross``, of the longer (instruction, response)
    input."""
    anchors, pos, neg = triplets(rows)
    if model.kind == "cross":
        ids = model.tokenize(*model.cross_inputs(anchors + anchors, pos + neg))
    else:
        ids = model.tokenize([model.passage_prefix + t for t in pos + neg])
    n = [len(x) for x in ids["input_ids"]]
    return [max(a, b) for a, b in zip(n[: len(rows)], n[len(rows) :], strict=True)]


def run_fingerprint(encoder: str | Path, rows: Sequence[dict[str, Any]], cfg: QSMConfig, seed: int) -> str:
    """Hash of everything that determines a training run; a checkpoint is resumed only if it matches."""
    ids = [(r["lang"], r["source_index"]) for r in rows]
    return checkpoint.run_fingerprint(str(encoder), ids, dataclasses.asdict(cfg), seed)


def _save_checkpoint(
    ckpt: Path,
    model: QualityModel,
    opt: Any,
    sched: Any,
    step: int,
    losses: list,
    fingerprint: str,
    stopper: early_stop.EarlyStopping | None,
) -> None:
    """Atomic checkpoint (:mod:`mdaq.models.checkpoint`): model folder, optimizer/scheduler/RNG state, step counter
    and, with early stopping, the validation losses so far and the best epoch's weights."""
    tmp = checkpoint.start(ckpt)
    model.save(tmp / "model")
    checkpoint.save_optim_state(tmp, opt, sched)
    state = {"step": step, "losses": losses, "fingerprint": fingerprint}
    if stopper is not None:
        stopper.save(tmp)
        state |= stopper.state()
    checkpoint.commit(ckpt, state)


def _load_checkpoint(ckpt: Path, state: dict[str, Any], model: QualityModel, opt: Any, sched: Any) -> tuple[int, list]:
    """Restore a checkpoint written by :func:`_save_checkpoint` (safetensors and ``weights_only`` loads); the early
    stopping part is restored by :meth:`~mdaq.quality.early_stop.EarlyStopping.load`."""
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
        Seeds data order, dropout, any new head and the validation split.
    ckpt_dir : path, optional
        Checkpoint folder, rewritten every ``cfg.checkpoint_every`` steps (and at every epoch end with
        ``cfg.val_share``); an existing one is resumed, and the resumed run reaches the same final weights as an
        uninterrupted one.
    stop_after : int, optional
        Raise :class:`Interrupted` after this many steps (simulates a crash in tests).

    Notes
    -----
    With ``cfg.val_share > 0`` a share of each language's pairs is held out (:func:`early_stop.split_validation`),
    the validation loss is computed after every epoch, training stops after ``cfg.patience`` epochs without a lower
    one, and the saved model holds the weights of the epoch with the lowest.
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
    train_rows, val_rows = early_stop.split_validation(rows, cfg.val_share, seed)
    stopper = early_stop.EarlyStopping(cfg.patience) if val_rows else None
    model = QualityModel(
        encoder,
        kind=cfg.kind,
        pooling=cfg.pooling,
        max_len=cfg.max_len,
        device=cfg.device,
        precision=cfg.precision,
        dropout=cfg.dropout,
        normalize=cfg.normalize,
    )
    model.load_encoder()
    hardware = configure_torch(cfg.precision, model.device, stage="qsm train")
    if cfg.freeze_embeddings:
        model.model_.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in model.model_.parameters() if p.requires_grad]
    params += list(model.head_.parameters()) if model.head_ is not None else []
    lengths = _response_lengths(model, train_rows) if cfg.group_by_length > 0 else [0] * len(train_rows)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    loop = StepLoop(lengths, cfg.batch_size, 1, cfg.epochs, seed, cfg.group_by_length, params, opt, None)
    loop.sched = get_cosine_schedule_with_warmup(opt, int(cfg.warmup_ratio * loop.n_steps), loop.n_steps)
    ckpt = Path(ckpt_dir) if ckpt_dir else None
    # the resolved precision, not "auto": a checkpoint is resumed only in the arithmetic that wrote it
    fingerprint = run_fingerprint(encoder, rows, dataclasses.replace(cfg, precision=hardware["precision"]), seed)
    state = checkpoint.matching_checkpoint(ckpt, fingerprint)  # another run's checkpoint is deleted
    if state is not None:
        loop.step, loop.losses = _load_checkpoint(ckpt, state, model, opt, loop.sched)
        if stopper is not None:
            stopper.load(ckpt, state)
    model.model_.train()
    start_step = loop.step

    def loss_of(group: list[np.ndarray]) -> float:
        loss = batch_loss(model, [train_rows[i] for i in group[0]], cfg)
        loss.backward()
        return float(loss.detach())

    def save_checkpoint(step: int) -> None:
        _save_checkpoint(ckpt, model, opt, loop.sched, step, loop.losses, fingerprint, stopper)

    def end_of_epoch(epoch: int) -> bool:
        return stopper.update(model, early_stop.validation_loss(model, val_rows, cfg.batch_size, _val_loss(cfg)))

    seconds = 0.0
    if stopper is None or not stopper.stopped:  # a run that stopped early is not resumed past its stop
        seconds = loop.run(
            loss_of,
            desc="qsm train",
            checkpoint=save_checkpoint if ckpt is not None else None,
            checkpoint_every=cfg.checkpoint_every,
            checkpoint_last=True,  # a finished run's checkpoint lets a rerun of the stage skip straight to saving
            stop_after=stop_after,
            on_epoch_end=end_of_epoch if stopper is not None else None,
        )
    if stopper is not None:
        stopper.restore(model)
    step, losses, n_steps = loop.step, loop.losses, loop.n_steps
    model.model_.eval()
    model.train_record_ = {
        "n_pairs": len(train_rows),
        "langs": dict(Counter(r["lang"] for r in train_rows)),
        "share_rev_not_longer": round(float(np.mean([is_not_longer(r) for r in train_rows])), 4),
        "seed": seed,
        "n_steps": n_steps,
        "config": dataclasses.asdict(cfg),
        "losses": losses,
        "seconds_this_run": round(seconds, 2),
        "pairs_per_s": round((step - start_step) * cfg.batch_size / max(seconds, 1e-9), 2),
        "hardware": hardware,
        **early_stop.record(stopper, len(val_rows)),
    }
    if stopper is not None:
        model.train_record_["n_steps_run"] = step
    _save_final(model, Path(out_dir))
    return model


def _val_loss(cfg: QSMConfig) -> Any:
    """The validation loss: the training loss of a batch, with the same settings."""
    return lambda model, batch: batch_loss(model, batch, cfg)


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
