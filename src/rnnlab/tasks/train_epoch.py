"""What a task accumulates over a training epoch, kept in mid-epoch checkpoints so a resumed epoch ends the same.

Lightning restores weights, optimizer, scheduler and loop counters, but not what a task sums over the epoch:
its own accumulator behind `self.log(..., on_epoch=True)` is not saved, so after a resume train/loss_epoch
would average only the batches since. TrainEpoch keeps that mean (token-weighted) and the token count behind
train/tokens_per_s as state a task saves in `on_save_checkpoint`; task=lm adds the hidden state it carries
from one BPTT window to the next.

Under DDP each process has its own share of this state (its own rows of the streams), while only process 0
writes the checkpoint: `per_process` gathers every process's share into it and `own_share` hands each
process its own back (none if the number of processes changed).
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torchmetrics import MeanMetric

from rnnlab import distributed


class TrainEpoch(torch.nn.Module):
    """The current training epoch's token-weighted mean loss (`loss`, logged as train/loss_epoch; Lightning
    computes, syncs across processes and resets it at the epoch's end) and its tokens and start time."""

    def __init__(self):
        super().__init__()
        self.loss = MeanMetric()
        self.start()

    def start(self) -> None:
        self.loss.reset()  # Lightning resets it at the epoch's end; a run resumed there restored it since
        self.tokens, self.started = 0, time.perf_counter()

    def log_step(self, task: L.LightningModule, nll: torch.Tensor, tokens: int, weight: int | None = None) -> None:
        """train/loss of this step (nats per target token), added to the epoch's token-weighted mean
        (train/loss_epoch, over all processes) and to its token count. A loss that is a mean over something else
        (a classifier's, over sentences) gives its count as `weight`."""
        weight = tokens if weight is None else weight
        task.log("train/loss", nll, on_step=True, on_epoch=False, prog_bar=True, batch_size=weight)
        self.loss.update(nll.detach(), weight=weight)
        self.tokens += tokens
        task.log("train/loss_epoch", self.loss, on_step=False, on_epoch=True)

    def log_tokens_per_s(self, task: L.LightningModule) -> None:
        """train/tokens_per_s: target tokens per second over the epoch so far, data loading and optimizer
        step included."""
        task.log("train/tokens_per_s", self.tokens / (time.perf_counter() - self.started), on_step=True,
                 on_epoch=False)

    def state(self) -> dict[str, Any]:
        return {"loss": {name: value.detach().cpu() for name, value in self.loss.metric_state.items()},
                "tokens": self.tokens}

    def restore(self, state: dict[str, Any]) -> None:
        for name, value in state["loss"].items():
            setattr(self.loss, name, value.to(getattr(self.loss, name).device))
        self.loss._update_count = 1  # it holds batches now, so torchmetrics need not warn at compute()
        self.tokens, self.started = state["tokens"], time.perf_counter()  # tokens/s restarts its clock


def per_process(task: L.LightningModule, state: Any) -> list[Any]:
    """[state of process 0, of process 1, ...] (on CPU); call it where every process does (on_save_checkpoint)."""
    state = move_data_to_device(state, "cpu")
    return distributed.all_gather_object(state) if task.trainer.world_size > 1 else [state]


def own_share(task: L.LightningModule, states: list[Any]) -> Any | None:
    """This process's entry of `per_process`'s list, or None when the run now has another number of processes."""
    world_size = task.trainer.world_size if task._trainer is not None else 1
    return states[task.global_rank] if len(states) == world_size else None
