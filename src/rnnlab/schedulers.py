"""Learning-rate schedules that torch does not ship as one object (`scheduler=` group), over a run's optimizer steps
or over its time budget.

A schedule over steps (`scheduler=cosine`) is tuned on one machine: on a slower or busier one the same time budget
(`trainer.max_time`) ends the run before the schedule does, mid-decay. A schedule over time (`scheduler=cosine_time`,
`step_time`) is a function of f, the fraction of the run's time budget spent, 0 → 1, read before every optimizer
step from the clock that ends the run (`clock`: wall, the budget `trainer.max_time`, or cpu, `trainer.max_cpu_time`),
so on every machine the decay ends when the budget does. The price: the lr of step s depends on how fast the steps
before it ran, so two runs of one seed are no longer step for step the same, even on one machine.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

import lightning.pytorch as L
from lightning.pytorch.callbacks import Timer
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from rnnlab.callbacks.cpu_timer import CPUTimer
from rnnlab.errors import ConfigError

# each clock's budget: the trainer key that sets it, and the callback that ends the run when it is spent
BUDGETS = {"wall": ("trainer.max_time", Timer), "cpu": ("trainer.max_cpu_time", CPUTimer)}


def warmup_cosine_factor(position: float, length: float, warmup: float = 0.0, min_lr_ratio: float = 0.0) -> float:
    """lr(s) / lr: a linear warmup from 0 over w, then a cosine decay to m·lr at S (after S it stays there); s, w and
    S count optimizer steps, or fractions of a time budget with S = 1.

    lr(s) = lr · s / w                                            for s < w
    lr(s) = lr · (m + (1 − m) · ½ (1 + cos(π (s − w) / (S − w))))   for w ≤ s ≤ S
    """
    if position < warmup:
        return position / warmup
    progress = min(1.0, (position - warmup) / (length - warmup))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0,
                  min_lr_ratio: float = 0.0) -> LambdaLR:
    """`scheduler=cosine`: warmup_cosine_factor over optimizer steps, w = warmup_steps, S = total_steps."""
    if total_steps < 1 or not 0 <= warmup_steps < total_steps:
        raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) < total_steps ({total_steps})")
    return LambdaLR(optimizer, lambda step: warmup_cosine_factor(step, total_steps, warmup_steps, min_lr_ratio))


def warmup_cosine_over_time(optimizer: Optimizer, spent: Callable[[], float], warmup_fraction: float = 0.0,
                            min_lr_ratio: float = 0.0) -> LambdaLR:
    """`scheduler=cosine_time`: warmup_cosine_factor over f = spent(), the fraction of the time budget spent:
    w = warmup_fraction, S = 1."""
    if not 0 <= warmup_fraction < 1:
        raise ConfigError(f"scheduler.scheduler.warmup_fraction={warmup_fraction} is invalid: the fraction of the "
                          f"time budget spent warming up, in [0, 1), e.g. 0.05")
    return LambdaLR(optimizer, lambda _step: warmup_cosine_factor(spent(), 1.0, warmup_fraction, min_lr_ratio))


def multistep_over_time(optimizer: Optimizer, spent: Callable[[], float], milestones: list[float],
                        gamma: float = 0.1) -> LambdaLR:
    """`scheduler=step_time`, scheduler=step over the fraction f = spent() of the time budget: lr(f) = lr · γ^k,
    k the number of milestones (fractions) ≤ f."""
    milestones = list(milestones)
    if not milestones or milestones != sorted(milestones) or not 0 < milestones[0] <= milestones[-1] < 1:
        raise ConfigError(f"scheduler.scheduler.milestones={milestones} is invalid: fractions of the time budget, "
                          f"increasing, each in (0, 1), e.g. [0.5, 0.75]")
    return LambdaLR(optimizer, lambda _step: gamma ** bisect.bisect_right(milestones, spent()))


def budget_spent(trainer: L.Trainer, clock: str) -> Callable[[], float]:
    """f, the fraction of the run's time budget spent, read off the callback that ends the run when it is spent (so f
    reaches 1 as training ends, and a resumed run goes on from the time its checkpoint kept). Under DDP it is rank
    0's reading, so that every process sets the same lr."""
    timer_class = BUDGETS[clock][1]
    timer = next((c for c in trainer.callbacks if isinstance(c, timer_class)), None)
    if timer is None:
        raise ConfigError(no_budget(clock))

    def spent() -> float:
        elapsed = timer.time_elapsed()
        budget = elapsed + timer.time_remaining()
        return trainer.strategy.broadcast(min(1.0, elapsed / budget))

    return spent


def no_budget(clock: str) -> str:
    """The one-line error of a schedule over a clock whose budget is not set."""
    key = BUDGETS[clock][0]
    other = next(c for c in BUDGETS if c != clock)
    return (f"scheduler.scheduler.clock={clock} spreads the schedule over {key}, which is not set: set it "
            f"(DD:HH:MM:SS, e.g. {key}=00:00:30:00), or use scheduler.scheduler.clock={other} with "
            f"{BUDGETS[other][0]}")
