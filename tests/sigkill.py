"""A callback for tests/test_resume.py: the training process kills itself with SIGKILL at a given step, the way
the kernel's OOM killer or a preempted node would: no exception, no cleanup, nothing flushed.

Added to a real `train.py` run with `+callbacks.sigkill._target_=sigkill.SigkillAtStep +callbacks.sigkill.step=N`
(tests/ on PYTHONPATH)."""

import os
import signal

import lightning.pytorch as L


class SigkillAtStep(L.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
