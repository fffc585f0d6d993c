"""What `python train.py` does: compose → build → fit → test → record. Returns the final metrics."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as L
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf, open_dict

from rnnlab import allocator, checkpoint_io, config, hardware, resume
from rnnlab.callbacks.cpu_timer import CPUTimer
from rnnlab.callbacks.random_state import RandomState
from rnnlab.errors import ConfigError
from rnnlab.models import registry
from rnnlab.tasks.base import restoring_weights
from rnnlab.tracking import mlflow_store, sweep
from rnnlab.tracking.recorder import RunRecorder

log = logging.getLogger(__name__)


def train(cfg: DictConfig, extra_callbacks: list[L.Callback] = ()) -> dict[str, float]:
    """Fit and test as configured; extra_callbacks join the configured ones (benchmarks use this)."""
    check(cfg)
    allocator.configure_from(cfg)
    datamodule, task, trainer = build(cfg, extra_callbacks)
    recorder = next(c for c in trainer.callbacks if isinstance(c, RunRecorder))
    resumed = recorder.resumed  # resume=: the checkpoint this run continues from
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.fit(task, datamodule=datamodule, ckpt_path=resumed and resumed.checkpoint, weights_only=True)
    fit_seconds = time.perf_counter() - started
    # the CPU time of this process (all its threads): on a shared machine, the budget a one-thread run used
    fit_cpu_seconds = time.process_time() - cpu_started
    validated = recorder.curves.val[-1][0] if recorder.curves.val else None
    if validated is not None and validated < trainer.global_step:  # max_steps / max_time stopped it mid-epoch
        log.warning("the last %d of %d optimizer steps were never validated, so the best checkpoint predates "
                    "them: validate on a step count that divides trainer.max_steps (trainer.val_check_interval=N "
                    "trainer.check_val_every_n_epoch=null), as experiment=shakespeare_char does",
                    trainer.global_step - validated, trainer.global_step)
    metrics = _scalars(trainer.callback_metrics)
    if cfg.get("test", True) and not trainer.fast_dev_run:
        trainer.test(task, datamodule=datamodule, ckpt_path=_best_checkpoint(trainer), verbose=False,
                     weights_only=True)
        metrics.update(_scalars(trainer.callback_metrics))
    metrics["fit_seconds"] = round(fit_seconds, 2)
    metrics["fit_cpu_seconds"] = round(fit_cpu_seconds, 2)
    recorder.finish(trainer, metrics, fit_seconds, fit_cpu_seconds)  # metrics.json, artifacts, run.json, the table
    return metrics


def check(cfg: DictConfig) -> None:
    """Everything that can be refused before anything is built: one-line ConfigErrors naming the fix."""
    config.check(cfg)
    hardware.check(cfg)
    config.check_writable(Path(cfg.paths.output_dir), "paths.output_dir")  # not at the first checkpoint
    _quiet_third_party_logging()
    if OmegaConf.select(cfg, "logger.mlflow"):  # before any data is built: a tracking server that does not answer
        mlflow_store.ensure_store(tracking_uri(cfg))


def build(cfg: DictConfig, extra_callbacks: list[L.Callback] = ()
          ) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """The data, the task (its network from model=), and the trainer with its callbacks and loggers, among them
    the RunRecorder that records the run (and knows the run resume= continues)."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = _instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")  # the task needs what the data determines (vocabulary sizes, ...)
    task = make_task(cfg, datamodule)
    store = tracking_uri(cfg) if OmegaConf.select(cfg, "logger.mlflow") else None
    resumed = resume.prepare(cfg, task, store)  # resume=: the checkpoint and MLflow run this run continues
    hardware.compile_model(task, cfg)

    recorder = RunRecorder(cfg, resumed, store)
    callbacks = [_instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    callbacks = [c for c in callbacks if c is not None]  # a callback that its settings turn off (weight_averaging)
    callbacks += [*recorder.callbacks(), RandomState(), hardware.ProcessReport(cfg), *extra_callbacks]
    if cfg.trainer.get("max_cpu_time") is not None:  # rnnlab's budget beside Lightning's trainer.max_time
        callbacks.append(CPUTimer(cfg.trainer.max_cpu_time))
    # a sweep's job (train.py -m) logs into the sweep's experiment as a child of its parent run
    loggers = [instantiate(c, **sweep.child_run_kwargs(c), **resume.logger_kwargs(c, resumed))
               for c in (cfg.get("logger") or {}).values() if c]
    if not loggers and any(isinstance(c, LearningRateMonitor) for c in callbacks):
        log.info("no logger configured: the lr_monitor callback has nothing to log to and is skipped")
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: L.Trainer = instantiate(lightning_trainer(cfg), callbacks=callbacks, logger=loggers or False,
                                     plugins=checkpoint_io.trainer_plugins(cfg.trainer))
    return datamodule, task, trainer


def make_task(cfg: DictConfig, datamodule: L.LightningDataModule) -> L.LightningModule:
    """The task of cfg (its network from model=, its optimizer and scheduler settings) for this set-up data."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    task_class = registry.task_class(get_class(cfg.task._target_), cfg.model)  # model=ngram counts instead
    check_fits(datamodule, task_class, cfg)
    task_kwargs = {k: v for k, v in plain["task"].items() if k != "_target_"}
    if hasattr(datamodule, "tokenizer_state") and task_class.takes_tokenizer:
        task_kwargs["tokenizer"] = datamodule.tokenizer_state()  # the checkpoint can then read and write text
    with restoring_weights(bool(cfg.get("resume"))):  # resume= loads every weight, the LM's copies too, next
        return task_class(**datamodule.task_inputs, model=plain["model"], optimizer=plain["optimizer"],
                          scheduler=plain.get("scheduler"), **task_kwargs)


def lightning_trainer(cfg: DictConfig) -> DictConfig:
    """cfg.trainer as Lightning's Trainer takes it: without rnnlab's own trainer.max_cpu_time (a CPUTimer callback)."""
    trainer = cfg.trainer.copy()
    with open_dict(trainer):
        trainer.pop("max_cpu_time", None)
    return trainer


def check_fits(datamodule: L.LightningDataModule, task_class: type, cfg: DictConfig) -> None:
    """A one-line ConfigError when the data is another task's (it decides other inputs than the task needs)."""
    if set(datamodule.task_inputs) != set(task_class.data_inputs):
        name = getattr(datamodule, "option", None) or cfg.data._target_
        gives, needs = ", ".join(datamodule.task_inputs), ", ".join(task_class.data_inputs)
        raise ConfigError(f"data={name} is not data for {task_class.option}: it gives {gives} where the task needs "
                          f"{needs}; pick a data= made for {task_class.option}, or leave data= out for its default")


def tracking_uri(cfg: DictConfig) -> str:
    """The MLflow store configured by logger=mlflow (env MLFLOW_TRACKING_URI overrides it there)."""
    return cfg.logger.mlflow.tracking_uri


def _instantiate(node: DictConfig, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, but a ConfigError from the target surfaces as itself, not wrapped."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, ConfigError):
            raise error.__cause__ from None
        raise


def _quiet_third_party_logging() -> None:
    # Lightning adds its own console handlers; Hydra's root handler already prints (and files in the
    # run's train.log) every record, so drop Lightning's to avoid each line appearing twice.
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")


def _scalars(callback_metrics: dict[str, Any]) -> dict[str, float]:
    """Final metrics; an epoch mean (`x_epoch`) stands for `x` over its last step's value."""
    out = {key: float(value) for key, value in callback_metrics.items() if not key.endswith("_epoch")}
    for key, value in callback_metrics.items():
        if key.endswith("_epoch"):
            out[key.removesuffix("_epoch")] = float(value)
    return out


def _best_checkpoint(trainer: L.Trainer) -> str | None:
    return getattr(trainer.checkpoint_callback, "best_model_path", None) or None
