"""`callbacks.weight_averaging.decay=<β>`: validate, test and keep an exponential moving average of the weights.

    θ̄_t = β θ̄_{t-1} + (1 − β) θ_t        after every optimizer step from `start_step` on (θ̄ = θ at the first)

Polyak averaging: the average of the late trajectory sits nearer the bottom of the valley that SGD/Adam bounce
around in, and changes more slowly than θ, so a run that overfits late (SST-2's phrases, from the second epoch) or
whose last updates are noisy evaluates better and more stably. It spans about 1 / (1 − β) updates (β = 0.999:
the last ~1000).

Lightning's `EMAWeightAveraging` does the work (rnnlab only checks the settings): validation runs on θ̄ (so the
checkpoint monitor, early stopping and the logged val/… are θ̄'s), every checkpoint holds θ̄ as its `state_dict`
(so eval.py, generate.py, translate.py, classify.py, tag.py and `model.init_from` read the averaged network)
with θ and the average's own state beside it, training goes on from θ, a resumed run restores both, and after the
last step θ̄ replaces θ for the test. Buffers are averaged too (BatchNorm statistics of an image encoder).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn

from rnnlab.errors import ConfigError


class ExponentialAverage(EMAWeightAveraging):
    """Lightning's EMA with two corrections (each tested):
    - until the first averaged step there is no θ̄: validation, checkpoints and the end of training use θ, not the
      copy of the initial weights that Lightning's callback would swap in (the sanity check, a validation before
      start_step, and a bag of words' idf fitted after that copy was taken would all read stale weights);
    - a checkpoint read to test (trainer.test(ckpt_path=...)) stays θ̄: Lightning hands every restored checkpoint to
      the callbacks, and its callback then loads θ (`current_model_state`) over the θ̄ that the checkpoint's
      state_dict has just put in place, so the test would score the raw weights."""

    def _averaged(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    # no optimizer step falls inside a validation: both ends see the same _averaged(), so they swap back what they swap
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._averaged():
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._averaged():
            super().on_validation_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._averaged():
            super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._averaged():  # before: a plain checkpoint, which a resumed run reads as "not averaged yet"
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # resume: θ and θ̄ both come back; from a checkpoint saved before the first averaged step there is no θ̄ yet
        if trainer.state.fn == TrainerFn.FITTING and "current_model_state" in checkpoint:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def weight_averaging(decay: float | None, start_step: int = 0, every_n_steps: int = 1) -> ExponentialAverage | None:
    """The callback, or None (no averaging) when decay is null."""
    if decay is None:
        return None
    if not 0 < decay < 1:
        raise ConfigError(f"callbacks.weight_averaging.decay={decay} is invalid: the average's weight on its past, "
                          f"0 < decay < 1 (e.g. 0.999: about the last 1000 updates), or null for no averaging")
    if start_step < 0:
        raise ConfigError(f"callbacks.weight_averaging.start_step={start_step} is invalid: the first optimizer step "
                          f"averaged, ≥ 0")
    if every_n_steps < 1:
        raise ConfigError(f"callbacks.weight_averaging.every_n_steps={every_n_steps} is invalid: average every n "
                          f"optimizer steps, n ≥ 1")
    return ExponentialAverage(decay=decay, update_starting_at_step=start_step, update_every_n_steps=every_n_steps)
