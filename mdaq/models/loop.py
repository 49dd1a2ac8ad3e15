"""The optimizer-step loop shared by the QSM trainer and the LoRA trainer: epochs of (possibly length-grouped)
batches, gradient clipping, a scheduler step, a progress bar, periodic resumable checkpoints and a simulated crash
for tests. The trainers supply what differs: how a step's batches turn into a loss, and what a checkpoint holds."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mdaq.models.checkpoint import Interrupted
from mdaq.models.lm import epoch_batches


@dataclass
class StepLoop:
    """Optimizer steps ``step .. n_steps - 1``; each takes ``group_size`` consecutive batches of the epoch's order.

    Parameters
    ----------
    lengths : sequence of int
        One length per training example (:func:`mdaq.models.lm.epoch_batches` groups by it when ``group_by_length``).
    batch_size, group_size, epochs, seed, group_by_length
        Batching: ``ceil(n / batch_size)`` batches per epoch, ``group_size`` of them per optimizer step.
    params, opt, sched
        The trained parameters (clipped to norm 1), optimizer and scheduler.
    step, losses
        Where a resumed run starts (its checkpoint's step and loss history).
    """

    lengths: Sequence[int]
    batch_size: int
    group_size: int
    epochs: int
    seed: int
    group_by_length: int
    params: list[Any]
    opt: Any
    sched: Any
    step: int = 0
    losses: list[float] = field(default_factory=list)

    @property
    def per_epoch(self) -> int:
        """Optimizer steps per epoch."""
        return int(np.ceil(np.ceil(len(self.lengths) / self.batch_size) / self.group_size))

    @property
    def n_steps(self) -> int:
        """Optimizer steps of the whole run."""
        return self.epochs * self.per_epoch

    def run(
        self,
        loss_of: Callable[[list[np.ndarray]], float],
        *,
        desc: str,
        checkpoint: Callable[[int], None] | None = None,
        checkpoint_every: int = 0,
        checkpoint_last: bool = False,
        stop_after: int | None = None,
        show: bool = True,
        loss_format: str = ".4f",
        on_epoch_end: Callable[[int], bool] | None = None,
    ) -> float:
        """Run the remaining steps; returns the wall seconds of this call.

        ``loss_of(group)`` runs forward and backward over a step's batches (index arrays) and returns the step's
        loss. ``checkpoint(step)`` is called every ``checkpoint_every`` steps before the last (and after the last
        too with ``checkpoint_last``). ``stop_after`` raises :class:`~mdaq.models.checkpoint.Interrupted` after
        that many steps of this call (tests simulate a crash with it).

        ``on_epoch_end(epoch)`` (1-based) runs after an epoch's last step; when it returns True, training stops
        there (early stopping) and that step counts as the last. With it, a checkpoint is also written at every
        epoch end, after the callback, so the checkpoint holds what the callback decided.
        """
        import torch
        from tqdm.auto import tqdm

        start, t0, order = self.step, time.perf_counter(), []
        bar = tqdm(total=self.n_steps, initial=self.step, desc=desc, unit="step", disable=not show)
        while self.step < self.n_steps:
            epoch, k = divmod(self.step, self.per_epoch)
            if k == 0 or not order:
                order = epoch_batches(self.lengths, self.batch_size, self.seed, epoch, self.group_by_length)
            loss = loss_of(order[k * self.group_size : (k + 1) * self.group_size])
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            self.opt.step()
            self.sched.step()
            self.opt.zero_grad(set_to_none=True)
            self.losses.append(round(loss, 6))
            self.step += 1
            bar.update(1)
            bar.set_postfix(loss=format(loss, loss_format))
            epoch_end = on_epoch_end is not None and self.step % self.per_epoch == 0
            stop = epoch_end and bool(on_epoch_end(self.step // self.per_epoch))
            last = self.step == self.n_steps or stop
            due = checkpoint_every > 0 and self.step % checkpoint_every == 0
            if checkpoint is not None and ((due and not last) or (last and checkpoint_last) or epoch_end):
                checkpoint(self.step)
            if stop:
                break
            if stop_after is not None and self.step - start >= stop_after and not last:
                raise Interrupted(f"stopped after step {self.step}")
        bar.close()
        return time.perf_counter() - t0
