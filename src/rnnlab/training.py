"""What `python train.py` does: compose → build → fit → test → record. Returns the final metrics."""

from __future__ import annotations

import inspect
import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf

from rnnlab import checkpoint_io, config, hardware, resume
from rnnlab.callbacks.random_state import RandomState
from rnnlab.errors import ConfigError
from rnnlab.models import registry
from rnnlab.tracking import mlflow_store, sweep, ui
from rnnlab.tracking.run_info import CurveRecorder, flatten, machine_tags, resolved_yaml, run_tags, write_metrics

log = logging.getLogger(__name__)


def train(cfg: DictConfig, extra_callbacks: list[L.Callback] = ()) -> dict[str, float]:
    """Fit and test as configured; extra_callbacks join the configured ones (benchmarks use this)."""
    config.check(cfg)
    hardware.check(cfg)
    config.check_writable(Path(cfg.paths.output_dir), "paths.output_dir")  # not at the first checkpoint
    _quiet_third_party_logging()
    if OmegaConf.select(cfg, "logger.mlflow"):  # before any data is built: a tracking server that does not answer
        mlflow_store.ensure_store(tracking_uri(cfg))
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = _instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")  # the task needs what the data determines (vocabulary sizes, ...)
    plain = OmegaConf.to_container(cfg, resolve=True)
    task_class = _task_class(cfg)
    task_kwargs = {k: v for k, v in plain["task"].items() if k != "_target_"}
    if hasattr(datamodule, "tokenizer_state") and "tokenizer" in inspect.signature(task_class).parameters:
        task_kwargs["tokenizer"] = datamodule.tokenizer_state()  # the checkpoint can then read and write text
    task = task_class(**datamodule.task_inputs, model=plain["model"], optimizer=plain["optimizer"],
                      scheduler=plain.get("scheduler"), **task_kwargs)
    store = tracking_uri(cfg) if OmegaConf.select(cfg, "logger.mlflow") else None
    resumed = resume.prepare(cfg, task, store)  # resume=: the checkpoint and MLflow run this run continues
    hardware.compile_model(task, cfg)

    output_dir = Path(cfg.paths.output_dir)
    curves = CurveRecorder()
    callbacks = [_instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    callbacks += [curves, RandomState(), hardware.ProcessReport(cfg), *extra_callbacks]
    # a sweep's job (train.py -m) logs into the sweep's experiment as a child of its parent run
    loggers = [instantiate(c, **sweep.child_run_kwargs(c), **resume.logger_kwargs(c, resumed))
               for c in (cfg.get("logger") or {}).values() if c]
    mlflow_logger = next((lg for lg in loggers if isinstance(lg, MLFlowLogger)), None)
    if not loggers and any(isinstance(c, LearningRateMonitor) for c in callbacks):
        log.info("no logger configured: the lr_monitor callback has nothing to log to and is skipped")
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                     plugins=checkpoint_io.trainer_plugins(cfg.trainer))

    if mlflow_logger is not None and trainer.is_global_zero:
        hydra = HydraConfig.get() if HydraConfig.initialized() else None
        choices = dict(hydra.runtime.choices) if hydra else {}
        overrides = list(hydra.overrides.task) if hydra else []
        tags = run_tags(choices, overrides, Path(cfg.paths.root_dir)) | machine_tags(task)
        for key, value in tags.items():
            mlflow_logger.experiment.set_tag(mlflow_logger.run_id, key, value)
        ui.mark_model_development(mlflow_logger.experiment, mlflow_logger.experiment_id)
        if resumed is None:
            mlflow_logger.log_hyperparams(flatten(plain))
        else:  # the same MLflow run goes on
            resume.continue_run(mlflow_logger, resumed, flatten(plain))
        mlflow_logger.experiment.log_text(mlflow_logger.run_id, resolved_yaml(cfg), "config.yaml")

    if trainer.is_global_zero:
        resume.record(output_dir, cfg, mlflow_logger, store)  # run.json: how resume= finds this run
    started = time.perf_counter()
    trainer.fit(task, datamodule=datamodule, ckpt_path=resumed and resumed.checkpoint, weights_only=True)
    fit_seconds = time.perf_counter() - started
    if curves.val and curves.val[-1][0] < trainer.global_step:  # max_steps / max_time stopped it mid-epoch
        log.warning("the last %d of %d optimizer steps were never validated, so the best checkpoint predates "
                    "them: validate on a step count that divides trainer.max_steps (trainer.val_check_interval=N "
                    "trainer.check_val_every_n_epoch=null), as experiment=shakespeare_char does",
                    trainer.global_step - curves.val[-1][0], trainer.global_step)
    metrics = _scalars(trainer.callback_metrics)
    if cfg.get("test", True) and not trainer.fast_dev_run:
        best = _best_checkpoint(trainer)
        trainer.test(task, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
        metrics.update(_scalars(trainer.callback_metrics))
    metrics["fit_seconds"] = round(fit_seconds, 2)

    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_metrics(output_dir / "metrics.json", metrics)
        resume.record(output_dir, cfg, mlflow_logger, store, finished=True)
        plot = curves.plot(output_dir / "loss_curve.png", title=f"{cfg.task_name}: {cfg.run_name}")
        if mlflow_logger is not None:
            run = mlflow_logger.experiment
            run.log_artifact(mlflow_logger.run_id, str(output_dir / "metrics.json"))
            if plot:
                run.log_artifact(mlflow_logger.run_id, str(plot))
            run.log_metric(mlflow_logger.run_id, "fit_seconds", fit_seconds)
        _report(metrics, mlflow_logger, output_dir, cfg)
    return metrics


def tracking_uri(cfg: DictConfig) -> str:
    """The MLflow store configured by logger=mlflow (env MLFLOW_TRACKING_URI overrides it there)."""
    return cfg.logger.mlflow.tracking_uri


def _task_class(cfg: DictConfig) -> type[L.LightningModule]:
    """task._target_, or the model family's own subclass of it (model=ngram counts instead of training)."""
    return registry.task_class(get_class(cfg.task._target_), cfg.model)


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


def _report(metrics: dict[str, float], mlflow_logger: MLFlowLogger | None, output_dir: Path,
            cfg: DictConfig) -> None:
    width = max(len(k) for k in metrics)
    lines = ["", "final metrics", "-" * (width + 14)]
    for key in sorted(metrics):
        value = metrics[key]
        text = f"{value:.4f}" if math.isfinite(value) and abs(value) < 1e6 else f"{value:.4g}"
        lines.append(f"{key:<{width}}  {text:>12}")
    lines.append("-" * (width + 14))
    lines.append(f"outputs:        {output_dir}")
    if mlflow_logger is not None:
        lines.append(f"mlflow run id:  {mlflow_logger.run_id}  (experiment {cfg.logger.mlflow.experiment_name!r})")
        link = ui.run_link(tracking_uri(cfg), mlflow_logger.experiment_id, mlflow_logger.run_id)
        lines.append(f"browse run:     {link}")
        lines.append(f"browse runs:    make ui   (mlflow ui --backend-store-uri {tracking_uri(cfg)})")
        journal = getattr(mlflow_logger, "journal", None)  # what the tracking server missed while unreachable
        if journal is not None and journal.pending():
            lines.append(f"not in MLflow:  {journal.pending()} records, kept in {journal.folder}: "
                         f"make sync ARGS={journal.folder}")
    print("\n".join(lines), flush=True)
