"""`trainer.max_cpu_time`: stop training once this process has used that much CPU time, as `trainer.max_time`
(Lightning's Timer) stops it after that much wall time. rnnlab.training adds it; Lightning's Trainer has no such key.

Why CPU time. On a shared machine other jobs stretch the wall time of a run (2-3× measured here) far more than its
CPU time, so a budget in CPU time gives two models the same compute beside whatever else runs, and a busy machine
no longer cuts a run short of its budget. `time.process_time` counts every thread of this process (torch's
intra-op threads, MLflow's writer): a run on two threads spends its budget up to twice as fast, so compare runs on
equal thread counts (the recipes are measured on one, OMP_NUM_THREADS=1).

Like Lightning's Timer it counts from the start of training (data preparation and the sanity check are not
counted; validation is), checks after every training batch and then asks the trainer to stop, so the run ends
as a max_time run does: one more validation and checkpoint, then test on the best checkpoint. The time used so
far is kept in checkpoints, so `resume=` goes on spending the same budget. Under DDP every process stops at the
step at which the first process (rank 0) has spent it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from time import process_time
from typing import Any

import lightning.pytorch as L
from lightning.pytorch.callbacks import Timer

log = logging.getLogger(__name__)


class CPUTimer(L.Callback):
    """`time_elapsed()` and `time_remaining()` as Lightning's Timer has them (in seconds), on the CPU clock."""

    def __init__(self, duration: str | dict[str, int] | timedelta):
        # Lightning's own reading of max_time ("DD:HH:MM:SS", a dict of timedelta's keys), so both budgets read alike
        self.duration = Timer(duration=duration).time_remaining()
        self._spent_before = 0.0  # by the processes this run was resumed from
        self._started: float | None = None

    def time_elapsed(self) -> float:
        running = process_time() - self._started if self._started is not None else 0.0
        return self._spent_before + running

    def time_remaining(self) -> float:
        return self.duration - self.time_elapsed()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = process_time()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._spent_before, self._started = self.time_elapsed(), None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_when_spent(trainer)  # a resumed run whose budget was spent already trains no further

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._stop_when_spent(trainer)

    def state_dict(self) -> dict[str, float]:
        return {"time_elapsed": self.time_elapsed()}

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        self._spent_before = state_dict.get("time_elapsed", 0.0)

    def _stop_when_spent(self, trainer: L.Trainer) -> None:
        spent = trainer.strategy.broadcast(self.time_elapsed() >= self.duration)  # rank 0 decides for all
        if spent and not trainer.should_stop and trainer.is_global_zero:
            log.info("CPU time budget spent (trainer.max_cpu_time, %s of CPU time): stopping at step %d",
                     timedelta(seconds=int(self.time_elapsed())), trainer.global_step)
        trainer.should_stop = trainer.should_stop or spent
