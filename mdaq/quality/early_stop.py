"""Several QSM epochs with early stopping: a validation split carved from the training pairs, the validation loss
after every epoch, the best epoch's weights kept (in memory and in the checkpoint) and restored at the end."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdaq.data.split import lang_rng

log = logging.getLogger(__name__)

BEST_FILE = "best.safetensors"  # in a checkpoint folder: the trainable weights of the best epoch so far


def split_validation(rows: Sequence[dict[str, Any]], share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(training rows, validation rows): ``round(share · n)`` pairs of each language go to validation, drawn with a
    seeded stream per language; both parts keep the input order.

    Raises
    ------
    ValueError
        When ``share`` is outside [0, 0.5], or is positive but rounds to no validation pair at all.
    """
    if not 0 <= share <= 0.5:
        raise ValueError(f"val_share must be in [0, 0.5], got {share}")
    if share == 0:
        return list(rows), []
    by_lang: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_lang.setdefault(r["lang"], []).append(i)
    val: set[int] = set()
    for lang, idx in sorted(by_lang.items()):
        n_val = int(round(share * len(idx)))
        pick = lang_rng(seed, lang, "qsm-validation").choice(len(idx), size=n_val, replace=False)
        val.update(idx[j] for j in pick)
    if not val:
        raise ValueError(f"val_share {share} leaves no validation pair among {len(rows)} training pairs")
    return [r for i, r in enumerate(rows) if i not in val], [r for i, r in enumerate(rows) if i in val]


def validation_loss(model: Any, rows: Sequence[dict], batch_size: int, loss_fn: Callable[..., Any]) -> float:
    """Mean of ``loss_fn(model, batch)`` over ``rows`` in batches of ``batch_size``, weighted by batch size, in eval
    mode and without gradients (no dropout, no random draws); the model is put back into training mode."""
    import torch

    model.model_.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            total += float(loss_fn(model, batch)) * len(batch)
    model.model_.train()
    return total / len(rows)


def trainable(model: Any) -> dict[str, Any]:
    """The tensors training changes, by name: the encoder's parameters that require gradients, and the head's."""
    out = {f"encoder.{n}": p for n, p in model.model_.named_parameters() if p.requires_grad}
    if model.head_ is not None:
        out |= {f"head.{n}": p for n, p in model.head_.named_parameters()}
    return out


@dataclass
class EarlyStopping:
    """Per-epoch validation losses, the best epoch (lowest loss; the earlier on a tie) and its weights.

    Parameters
    ----------
    patience : int
        Epochs without a lower validation loss after which training stops; 0 never stops early (the best epoch's
        weights are still the ones kept).
    """

    patience: int
    losses: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped: bool = False
    best_: dict[str, Any] | None = None

    def update(self, model: Any, loss: float) -> bool:
        """Record an epoch's validation loss (keeping a copy of the weights if it is the best so far); True when
        training should stop."""
        self.losses.append(round(float(loss), 6))
        epoch = len(self.losses)
        if self.best_epoch == 0 or self.losses[-1] < self.losses[self.best_epoch - 1]:
            self.best_epoch = epoch
            self.best_ = {k: v.detach().cpu().clone() for k, v in trainable(model).items()}
        self.stopped = self.patience > 0 and epoch - self.best_epoch >= self.patience
        stop = "; stopping" if self.stopped else ""
        log.info("epoch %d: validation loss %.6f (best: epoch %d)%s", epoch, loss, self.best_epoch, stop)
        return self.stopped

    def restore(self, model: Any) -> None:
        """Copy the best epoch's weights into ``model`` (nothing to do before the first epoch ends)."""
        import torch

        if self.best_ is None:
            return
        params = trainable(model)
        with torch.no_grad():
            for name, value in self.best_.items():
                params[name].copy_(value.to(params[name].device))

    def state(self) -> dict[str, Any]:
        """The JSON part of a checkpoint (the weights go to :data:`BEST_FILE`, :meth:`save`)."""
        return {"val_losses": self.losses, "best_epoch": self.best_epoch, "stopped_early": self.stopped}

    def save(self, folder: Path) -> None:
        """Write the best weights (safetensors) into a checkpoint folder being assembled."""
        from safetensors.torch import save_file

        if self.best_ is not None:
            save_file({k: v.contiguous() for k, v in self.best_.items()}, folder / BEST_FILE)

    def load(self, folder: Path, state: dict[str, Any]) -> None:
        """Restore :meth:`state` and :meth:`save` from a checkpoint."""
        from safetensors.torch import load_file

        self.losses = [float(x) for x in state.get("val_losses", [])]
        self.best_epoch = int(state.get("best_epoch", 0))
        self.stopped = bool(state.get("stopped_early", False))
        self.best_ = load_file(folder / BEST_FILE) if self.best_epoch else None


def record(stopper: EarlyStopping | None, n_val: int) -> dict[str, Any]:
    """The training record's fields about validation (empty without it)."""
    if stopper is None:
        return {}
    return {"n_val_pairs": n_val, **stopper.state(), "epochs_run": len(stopper.losses)}
