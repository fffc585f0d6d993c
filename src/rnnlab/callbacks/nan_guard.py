"""`callbacks.nan_guard`: stop at the first non-finite loss or gradient, before it reaches the weights.

A NaN or inf loss (or a gradient that overflowed) makes every weight NaN at the next optimizer step, and
everything trained after it is lost; a checkpoint written after that step would hold NaN weights. This
callback checks the loss before backward and the total gradient norm before the optimizer step, and
raises TrainingStopped naming the step and the likely fixes. The weights are then still those of the
previous step, and no checkpoint is written after it, so the last one written is the last good one.

Under `precision=16-mixed` the gradient check is left to the loss scaler, whose job it is: it skips a step
whose scaled gradient overflowed and lowers the scale, so such a step is routine there, not a failure.

Cost: the two checks read one number each per step (a device synchronisation on GPU); the gradient norm is the
one train/grad_norm logs and clipping uses (tasks/optimization.py), taken once.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
import torch

from rnnlab.errors import TrainingStopped
from rnnlab.tasks.optimization import gradient_norm


class StopOnNonFinite(L.Callback):
    def __init__(self, checkpoint_dir: str | Path | None = None):
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss.detach()).all():
            self._stop(trainer, f"the training loss is {float(loss.detach().sum())}")

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return  # 16-mixed: the loss scaler skips a step whose gradient overflowed and lowers its scale
        norm = gradient_norm(pl_module)  # the one train/grad_norm and clipping use
        if norm is not None and not torch.isfinite(norm):
            self._stop(trainer, "the gradient is not finite (the loss was)")

    def _stop(self, trainer: L.Trainer, what: str) -> None:
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        kept = self._newest_checkpoint()
        kept = (f"the last checkpoint, written before it, is kept: {kept} (continue from it with "
                f"python train.py resume={kept.parent.parent})" if kept else "no checkpoint had been written yet")
        clip = trainer.gradient_clip_val
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        raise TrainingStopped(
            f"{what} at step {trainer.global_step} (epoch {trainer.current_epoch}, batch {progress.ready - 1}): "
            f"training stopped before it changed the weights; {kept}. Clip gradients "
            f"(trainer.gradient_clip_val, now {clip or 'off'}) or lower the learning rate (optimizer.lr, now {lr})")

    def _newest_checkpoint(self) -> Path | None:
        if self.checkpoint_dir is None or not self.checkpoint_dir.is_dir():
            return None
        checkpoints = sorted(self.checkpoint_dir.glob("*.ckpt"), key=lambda path: path.stat().st_mtime)
        return checkpoints[-1] if checkpoints else None
