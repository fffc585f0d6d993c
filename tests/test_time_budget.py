"""Schedules over a time budget (scheduler=cosine_time, step_time) and the CPU-time budget (trainer.max_cpu_time).

No test waits on a real clock: the CPU clock is a fake that the test advances by hand (one second per training
batch in the fit), and Lightning's wall-clock Timer is read at the time a checkpoint restored into it.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import lightning.pytorch as L
import pytest
import torch
from conftest import compose_train
from lightning.pytorch.callbacks import Timer

from rnnlab import config
from rnnlab.callbacks import cpu_timer
from rnnlab.callbacks.cpu_timer import CPUTimer
from rnnlab.errors import ConfigError
from rnnlab.schedulers import budget_spent, multistep_over_time, warmup_cosine_over_time
from rnnlab.tracking.run_info import time_budget
from rnnlab.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

LR, WARMUP, MIN = 0.1, 0.2, 0.05


def cosine(f: float) -> float:
    """The lr at f of the budget, written out: warmup to WARMUP, then cosine to MIN·LR at f = 1."""
    if f < WARMUP:
        return LR * f / WARMUP
    return LR * (MIN + (1 - MIN) * 0.5 * (1 + math.cos(math.pi * (min(f, 1) - WARMUP) / (1 - WARMUP))))


class FakeClock:
    """A clock that moves only when the test moves it."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def schedule_lrs(build, fractions: list[float]) -> list[float]:
    """The lr a schedule over time sets after an optimizer step taken at each fraction of the budget."""
    spent = FakeClock(0.0)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    schedule = build(optimizer, spent)
    lrs = []
    for f in fractions:
        spent.now = f
        optimizer.step()
        schedule.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_cosine_over_time_sets_the_formulas_lr_at_each_fraction_of_the_budget():
    fractions = [0.0, WARMUP / 2, WARMUP, 0.5, 0.9, 1.0]
    lrs = schedule_lrs(lambda opt, spent: warmup_cosine_over_time(opt, spent, WARMUP, MIN), fractions)
    assert lrs == pytest.approx([0.0, LR / 2, LR, cosine(0.5), cosine(0.9), MIN * LR], rel=1e-12, abs=1e-15)
    assert cosine(0.5) == pytest.approx(LR * (MIN + (1 - MIN) * 0.5 * (1 + math.cos(math.pi * 0.375))))


def test_step_over_time_multiplies_by_gamma_at_each_milestone_fraction():
    lrs = schedule_lrs(lambda opt, spent: multistep_over_time(opt, spent, [0.5, 0.75], gamma=0.1),
                       [0.0, 0.49, 0.5, 0.74, 0.75, 1.0])
    assert lrs == pytest.approx([LR, LR, LR / 10, LR / 10, LR / 100, LR / 100])


def trainer_with(*callbacks) -> SimpleNamespace:
    """What budget_spent and CPUTimer ask of a trainer, on one process."""
    return SimpleNamespace(callbacks=list(callbacks), strategy=SimpleNamespace(broadcast=lambda value: value),
                           should_stop=False, global_step=0, is_global_zero=True)


def test_the_budget_fraction_is_read_off_the_timer_that_ends_the_run_with_the_time_a_checkpoint_kept(monkeypatch):
    wall = Timer(duration="00:00:01:40")  # trainer.max_time's Timer: 100 s
    wall.load_state_dict({"time_elapsed": {"train": 40.0}})  # as resume= restores it, before training starts
    assert budget_spent(trainer_with(wall), "wall")() == pytest.approx(0.4)

    clock = FakeClock()
    monkeypatch.setattr(cpu_timer, "process_time", clock)
    cpu = CPUTimer("00:00:01:40")
    trainer = trainer_with(wall, cpu)
    spent = budget_spent(trainer, "cpu")
    cpu.on_train_start(trainer, None)
    clock.now += 30
    assert spent() == pytest.approx(0.3) and cpu.state_dict() == {"time_elapsed": pytest.approx(30)}

    resumed = CPUTimer("00:00:01:40")  # a new process: its own CPU clock, the checkpoint's time
    resumed.load_state_dict(cpu.state_dict())
    spent = budget_spent(trainer_with(resumed), "cpu")
    clock.now += 500  # what this process did before training (building the data) is not counted
    assert spent() == pytest.approx(0.3)
    resumed.on_train_start(trainer, None)
    clock.now += 90
    assert spent() == 1.0  # 120 s of 100: spent, not more
    with pytest.raises(ConfigError, match=r"^scheduler.scheduler.clock=wall spreads the schedule over "
                                          r"trainer.max_time, which is not set: set it \(DD:HH:MM:SS"):
        budget_spent(trainer_with(cpu), "wall")


def test_the_cpu_timer_stops_training_once_its_budget_is_spent_also_when_resumed_after_it(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(cpu_timer, "process_time", clock)
    timer, trainer = CPUTimer("00:00:00:10"), trainer_with()
    timer.on_fit_start(trainer, None)
    timer.on_train_start(trainer, None)
    clock.now += 9.9
    timer.on_train_batch_end(trainer)
    assert not trainer.should_stop
    clock.now += 0.1
    timer.on_train_batch_end(trainer)
    assert trainer.should_stop

    resumed, trainer = CPUTimer("00:00:00:10"), trainer_with()
    resumed.load_state_dict(timer.state_dict())
    resumed.on_fit_start(trainer, None)
    assert trainer.should_stop  # before its first batch


@pytest.mark.parametrize(("overrides", "message"), [
    (["scheduler=cosine_time"], "scheduler.scheduler.clock=wall spreads the schedule over trainer.max_time, which is "
                                "not set: set it (DD:HH:MM:SS, e.g. trainer.max_time=00:00:30:00), or use "
                                "scheduler.scheduler.clock=cpu with trainer.max_cpu_time"),
    (["scheduler=step_time", "scheduler.scheduler.clock=cpu", "trainer.max_time=00:00:30:00"],
     "scheduler.scheduler.clock=cpu spreads the schedule over trainer.max_cpu_time, which is not set"),
    (["scheduler=cosine_time", "scheduler.scheduler.clock=gpu"],
     "scheduler.scheduler.clock=gpu is invalid: wall (the budget trainer.max_time) or cpu"),
    (["scheduler=cosine_time", "scheduler.scheduler.warmup_fraction=1", "trainer.max_time=00:00:30:00"],
     "scheduler.scheduler.warmup_fraction=1 is invalid: the fraction of the time budget spent warming up, in [0, 1)"),
    (["scheduler=step_time", "scheduler.scheduler.milestones=[0.75,0.5]", "trainer.max_time=00:00:30:00"],
     "scheduler.scheduler.milestones=[0.75, 0.5] is invalid: fractions of the time budget, increasing"),
    (["trainer.max_cpu_time=30min"], "trainer.max_cpu_time=30min is invalid: a positive duration DD:HH:MM:SS"),
    (["trainer.max_time=00:00:00:00"], "trainer.max_time=00:00:00:00 is invalid: a positive duration"),
])
def test_a_time_schedule_or_budget_set_wrong_is_one_line_before_anything_is_built(overrides, message, tmp_path):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        config.check(compose_train(overrides, tmp_path))


def test_a_studys_machine_line_names_the_budget_the_run_stopped_on():
    minutes = {"fit_seconds": 1884.0, "fit_cpu_seconds": 1800.0}
    assert time_budget({"trainer.max_cpu_time": "00:00:30:00", "trainer.max_time": "None"}, minutes) == \
        "31.4 min wall, 30.0 min CPU (budget `trainer.max_cpu_time` 00:00:30:00 of CPU time)"
    assert time_budget({"trainer.max_time": "00:00:30:00"}, {"fit_seconds": 1512.0}) == \
        "25.2 min wall (budget `trainer.max_time` 00:00:30:00 of wall time)"  # a run from before fit_cpu_seconds


# --- one fit, resumed ---------------------------------------------------------------------------------------------
# 23 BPTT windows an epoch; a budget of 10 s of the fake CPU clock, which moves 1 s per training batch
TINY_LM = ["data.train_tokens=12000", "data.val_tokens=2000", "data.test_tokens=2000", "data.batch_size=16",
           "data.eval_batch_size=8", "data.bptt=32", "model.embedding_size=16", "model.hidden_size=32",
           "model.num_layers=1", "trainer.log_every_n_steps=1", "callbacks.progress_bar.refresh_rate=0",
           "+trainer.enable_model_summary=false", "logger=csv", f"optimizer.lr={LR}",
           "scheduler=cosine_time", "scheduler.scheduler.clock=cpu", f"scheduler.scheduler.warmup_fraction={WARMUP}",
           f"scheduler.scheduler.min_lr_ratio={MIN}", "trainer.max_cpu_time=00:00:00:10", "trainer.max_epochs=-1",
           "callbacks.last_checkpoint.every_n_steps=5"]


class Steps(L.Callback):
    """Moves the fake CPU clock 1 s at each training batch, notes the lr each step ran with, crashes at a step."""

    def __init__(self, clock: FakeClock, crash_at: int | None = None):
        self.clock, self.crash_at, self.lrs, self.final = clock, crash_at, {}, None

    def on_train_batch_start(self, trainer, *args):
        self.clock.now += 1.0
        self.lrs[trainer.global_step + 1] = trainer.optimizers[0].param_groups[0]["lr"]

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.crash_at:
            raise RuntimeError("crash")

    def on_train_end(self, trainer, *args):
        self.final = (trainer.global_step, trainer.optimizers[0].param_groups[0]["lr"])


def test_a_cpu_budget_ends_the_run_as_its_schedule_ends_and_a_resumed_run_spends_what_is_left(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(cpu_timer, "process_time", clock)
    crashed = Steps(clock, crash_at=7)
    with pytest.raises(RuntimeError, match="crash"):
        train(compose_train(TINY_LM, tmp_path), extra_callbacks=[crashed])
    # step s runs with the lr set after step s - 1, at f = (s - 1) / 10
    assert crashed.lrs == pytest.approx({step: cosine((step - 1) / 10) for step in range(1, 8)}, abs=1e-15)
    run_dir = tmp_path / "run"
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 5 and checkpoint["callbacks"]["CPUTimer"] == {"time_elapsed": 5.0}

    resumed = Steps(clock)
    metrics = train(compose_train([*TINY_LM, f"resume={run_dir}"], tmp_path), extra_callbacks=[resumed])
    assert resumed.lrs == pytest.approx({step: cosine((step - 1) / 10) for step in range(6, 11)})
    assert resumed.final == (10, pytest.approx(MIN * LR))  # stopped as the 10 s were spent, the lr decayed
    assert math.isfinite(metrics["test/loss"])
    logged = (run_dir / "csv").glob("version_*/metrics.csv")
    lr_column = [line for path in logged for line in path.read_text().splitlines()[:1]]
    assert all("lr-Adam" in header for header in lr_column) and lr_column  # the lr monitor logs it
