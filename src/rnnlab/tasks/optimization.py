"""The optimizer and learning-rate schedule of a task (from the `optimizer` and `scheduler` groups), and the
gradient norm every task logs and clips by (the per-epoch loss and tokens/s: train_epoch.py)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import torch
from hydra.utils import instantiate

from rnnlab import schedulers
from rnnlab.errors import ConfigError


def configure_optimizers(task: L.LightningModule, optimizer: dict[str, Any], scheduler: dict[str, Any] | None):
    """What LightningModule.configure_optimizers returns: the optimizer, with its lr_scheduler dict if any."""
    built_optimizer = instantiate(optimizer, params=task.parameters())
    if not scheduler:
        return built_optimizer
    # the group holds Lightning's lr_scheduler dict: {scheduler: {_target_...}, interval, monitor}
    schedule = dict(scheduler["scheduler"])
    if "total_steps" in schedule:  # cosine
        explicit = schedule["total_steps"] is not None
        if not explicit:  # default to the whole run's length
            schedule["total_steps"] = int(task.trainer.estimated_stepping_batches)
        warmup = schedule.get("warmup_steps", 0)
        if warmup >= schedule["total_steps"]:
            if explicit:
                raise ConfigError(f"scheduler.scheduler.warmup_steps={warmup} is not below "
                                  f"scheduler.scheduler.total_steps={schedule['total_steps']}: lower the warmup, "
                                  f"or raise total_steps (null = the run's length)")
            if not task.trainer.fast_dev_run:
                raise ConfigError(f"scheduler.scheduler.warmup_steps={warmup} is not below this run's "
                                  f"{schedule['total_steps']} optimizer steps: lower it or train longer")
            schedule["warmup_steps"] = 0  # a smoke test of a step or two: the schedule's shape is moot
    over_time = {}
    if "clock" in schedule:  # over the time budget (cosine_time, step_time): f from the clock that ends the run
        over_time["spent"] = schedulers.budget_spent(task.trainer, schedule.pop("clock"))
    return {"optimizer": built_optimizer,
            "lr_scheduler": {**scheduler, "scheduler": instantiate(schedule, optimizer=built_optimizer, **over_time)}}


def gradient_norm(task: L.LightningModule) -> torch.Tensor | None:
    """‖g‖₂ over all of the task's gradients, as the optimizer is about to apply them; None when none has one.

    Computed once per optimizer step and kept on the task: the NaN guard, train/grad_norm and norm clipping all
    read this one. Each pass reads every gradient, and three of them cost ~5 % of a small LSTM's step on a CPU."""
    step = task.trainer.global_step  # unchanged from the first of those hooks to the optimizer step
    kept = getattr(task, "_gradient_norm", None)
    if kept is not None and kept[0] == step:
        return kept[1]
    gradients = [p.grad for p in task.parameters() if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(gradients) if gradients else None
    task._gradient_norm = (step, norm)
    return norm


def log_grad_norm(task: L.LightningModule) -> None:
    """train/grad_norm, from on_before_optimizer_step: Lightning clips after that hook, so this is the
    norm the clipping threshold is compared with."""
    norm = gradient_norm(task)
    if norm is not None:
        task.log("train/grad_norm", norm, on_step=True, on_epoch=False)


def clip_by_norm(task: L.LightningModule, max_norm: float) -> None:
    """g ← g · min(1, max_norm / ‖g‖₂), what torch.nn.utils.clip_grad_norm_ does, with the norm already taken."""
    norm = gradient_norm(task)
    if norm is not None:
        torch.nn.utils.clip_grads_with_norm_([p for p in task.parameters() if p.grad is not None], max_norm, norm)
