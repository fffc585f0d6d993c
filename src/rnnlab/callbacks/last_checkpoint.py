"""`callbacks.last_checkpoint`: `checkpoints/last.ckpt` every N optimizer steps and at every epoch's end,
so a crash loses at most N steps; `python train.py resume=<run dir>` continues from it (rnnlab/resume/).

The file holds everything a resumed run needs to continue exactly as if never stopped: weights, optimizer,
schedule, loop counters, callback states, random generators, the position in the epoch and what the task
sums over it (its carried hidden state included). It is written atomically (rnnlab/checkpoint_io.py), so
a kill mid-write leaves the previous one.

Cost: one checkpoint write, i.e. the model and optimizer state (about 3× the weights with Adam) serialised
and fsynced, every N steps; measured in docs/troubleshooting.md.

It owns last.ckpt alone (model_checkpoint keeps only the best, `save_last: false`): two writers of one name
make Lightning's ModelCheckpoint version it (last-v1.ckpt). It is a callback of its own, not a second
ModelCheckpoint, because MLFlowLogger uploads the checkpoints of whichever ModelCheckpoint saved last, and
a step-wise one would hide the best checkpoint from the run.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.loggers import MLFlowLogger

from rnnlab.errors import ConfigError
from rnnlab.tracking.queued_writes import QueuedWrites


class LastCheckpoint(Checkpoint):
    """A Checkpoint, so Lightning runs it after the other callbacks have updated their state for the batch."""

    def __init__(self, dirpath: str | Path, every_n_steps: int = 200, filename: str = "last.ckpt"):
        if not isinstance(every_n_steps, int) or isinstance(every_n_steps, bool) or every_n_steps < 1:
            raise ConfigError(f"callbacks.last_checkpoint.every_n_steps={every_n_steps} is invalid: must be a "
                              f"positive integer (optimizer steps between checkpoints)")
        self.path = Path(dirpath) / filename
        self.every_n_steps = every_n_steps
        self._saved_step = -1
        self._plateau_metrics: list[float | None] = []  # see on_train_epoch_end
        self._queued_writes: list[QueuedWrites] = []

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        # the metrics logged before a checkpoint are in MLflow before it is written: a run resumed from it
        # logs only later steps, so none goes missing (rnnlab/tracking/queued_writes.py)
        if stage == "fit" and trainer.is_global_zero:
            self._queued_writes = [QueuedWrites(lg) for lg in trainer.loggers if isinstance(lg, MLFlowLogger)]

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step  # optimizer steps done, this batch's included
        # once per step: with gradient accumulation the batches after the one that stepped share its count;
        # not after an epoch's last batch, where validation is yet to run (as Lightning's ModelCheckpoint):
        # the epoch's end saves next, and a resume between the two would not be exact
        if step % self.every_n_steps == 0 and step != self._saved_step \
                and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._save(trainer)
            self._saved_step = step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        # after validation and after the callbacks that follow its metrics (early stopping): the end of the epoch.
        # Lightning steps ReduceLROnPlateau schedulers after this hook, and a run resumed from here skips that
        # step (the checkpoint lacks the metric it needs): keep the metric, and take the step on resume
        self._plateau_metrics = [
            float(trainer.callback_metrics[config.monitor])
            if config.reduce_on_plateau and config.interval == "epoch" and config.monitor in trainer.callback_metrics
            and (trainer.current_epoch + 1) % config.frequency == 0 else None
            for config in trainer.lr_scheduler_configs]
        self._save(trainer)
        self._plateau_metrics = []

    @property
    def state_key(self) -> str:  # one per file it writes, whatever its step interval (which a resume may change)
        return self._generate_state_key(filename=self.path.name)

    def state_dict(self) -> dict:
        return {"plateau_metrics": self._plateau_metrics} if any(m is not None for m in self._plateau_metrics) else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self._plateau_metrics = list(state_dict.get("plateau_metrics", []))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pending, self._plateau_metrics = self._plateau_metrics, []
        for config, metric in zip(trainer.lr_scheduler_configs, pending):
            if metric is not None:
                pl_module.lr_scheduler_step(config.scheduler, metric)

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.fast_dev_run:
            return
        for writes in self._queued_writes:
            writes.wait()
        trainer.save_checkpoint(self.path, weights_only=False)  # all of it, for resume (and no "was not set" log line)
