"""In train(): the checkpoint a resumed run continues from, checked against the model built now and the settings
recorded then, and the MLflow run it goes on in. See rnnlab/resume/__init__.py."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from rnnlab.errors import ConfigError
from rnnlab.models import registry
from rnnlab.resume.command import locate
from rnnlab.resume.records import CHECKPOINT, Resume, read_record, trained_config

if TYPE_CHECKING:
    import lightning.pytorch as L

log = logging.getLogger(__name__)


def prepare(cfg: DictConfig, task: L.LightningModule, tracking_uri: str | None) -> Resume | None:
    """The checkpoint and MLflow run `cfg.resume` continues, after checking that its model is `task`'s; None
    without resume=."""
    from rnnlab import checkpoint_io

    target = cfg.get("resume")
    if not target:
        return None
    run_dir = locate(str(target), Path(cfg.paths.log_dir), tracking_uri)
    checkpoint_path = run_dir / CHECKPOINT
    checkpoint = checkpoint_io.load(checkpoint_path, f"resume={run_dir}")
    added = _keys_added_since(checkpoint, task)
    _check_same_model(checkpoint, task, run_dir, added)
    record = read_record(run_dir)
    trained = record.get("trained")
    if trained is not None:
        trained = {**{f"model.{key}": value for key, value in added.items()}, **trained}
    _check_same_training(trained, trained_config(cfg), run_dir)
    if "current_model_state" in checkpoint and OmegaConf.select(cfg, "callbacks.weight_averaging.decay") is None:
        # its state_dict is the average θ̄; without the callback training would go on from θ̄, not from θ
        raise ConfigError(f"resume={run_dir}: the run averaged its weights (callbacks.weight_averaging) and its "
                          f"checkpoint holds the average; resume with the run's callbacks.weight_averaging settings")
    run_id = record.get("mlflow_run_id")
    if run_id and tracking_uri:
        _check_run_exists(run_id, tracking_uri, record.get("tracking_uri"))
    output_dir = Path(cfg.paths.output_dir).resolve()
    if output_dir != run_dir:
        log.warning("resuming %s, but writing this run's outputs into %s", run_dir, output_dir)
    step = int(checkpoint.get("global_step", 0))
    log.info("resuming %s from %s (epoch %s, step %d)", run_dir, checkpoint_path, checkpoint.get("epoch"), step)
    return Resume(run_dir, checkpoint_path, run_id, step)


def _keys_added_since(checkpoint: dict[str, Any], task: L.LightningModule) -> dict[str, Any]:
    """The model.* keys the checkpoint lacks that are at the network's default now: keys added to rnnlab after the
    run was trained. A new key's default builds what the code built before it existed, so they change nothing."""
    saved = (checkpoint.get("hyper_parameters") or {}).get("model") or {}
    built = dict(task.hparams).get("model") or {}
    if not saved or not built:
        return {}
    defaults = registry.defaults(built, task.shape)
    return {key: value for key, value in built.items()
            if key not in saved and key in defaults and defaults[key] == value}


def _check_same_model(checkpoint: dict[str, Any], task: L.LightningModule, run_dir: Path,
                      added: dict[str, Any]) -> None:
    saved = checkpoint.get("hyper_parameters") or {}
    built = dict(task.hparams)
    for key in ("model", *(k for k in built if k.endswith("vocab_size"))):
        old, new = saved.get(key), built.get(key)
        if key == "model" and isinstance(old, dict):
            old = {**added, **old}
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            key, (old, new) = next((f"model.{k}", (old.get(k), new.get(k))) for k in sorted({*old, *new})
                                   if old.get(k) != new.get(k))
        raise ConfigError(f"resume={run_dir}: its checkpoint is of another model ({key}={old} there, {new} here); "
                          f"resume with the run's own settings, or start a new run")
    if saved.get("tokenizer") != built.get("tokenizer"):
        raise ConfigError(f"resume={run_dir}: its checkpoint's vocabulary is not the one the data gives now (did the "
                          f"data or its settings change?); resume with the run's own data, or start a new run")
    weights, shapes = checkpoint["state_dict"], {k: tuple(v.shape) for k, v in task.state_dict().items()}
    for name in sorted({*weights, *shapes}):
        there = tuple(weights[name].shape) if name in weights else None
        if there != shapes.get(name):
            raise ConfigError(f"resume={run_dir}: its checkpoint's weights do not fit the model built now ({name}: "
                              f"{there or 'absent'} there, {shapes.get(name) or 'absent'} here; did the data or "
                              f"its vocabulary change?); start a new run")


def _check_same_training(trained: dict[str, Any] | None, now: dict[str, Any], run_dir: Path) -> None:
    """Config files may have changed since the run started: what it was trained with must not have."""
    if trained is None:  # a run older than run.json's record of it
        return
    changed = next((key for key in sorted({*trained, *now}) if trained.get(key) != now.get(key)), None)
    if changed is not None:
        raise ConfigError(f"resume={run_dir}: {changed} was {trained.get(changed)} when the run was trained and is "
                          f"{now.get(changed)} now (a changed config file?); resume with the run's own settings, "
                          f"or start a new run")


def _check_run_exists(run_id: str, tracking_uri: str, recorded_uri: str | None) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.MlflowClient(tracking_uri).get_run(run_id)
    except MlflowException:
        where = f" (it was logged to {recorded_uri})" if recorded_uri and recorded_uri != tracking_uri else ""
        raise ConfigError(f"resume: the run's MLflow run {run_id} is not in the store {tracking_uri}{where}; set "
                          f"MLFLOW_TRACKING_URI to that store, or resume with logger=none") from None


def logger_kwargs(logger_node: DictConfig, resume: Resume | None) -> dict[str, Any]:
    """MLFlowLogger(run_id=...) for the run being continued; nothing for other loggers or a new run."""
    from hydra.utils import get_class
    from lightning.pytorch.loggers import MLFlowLogger

    target = logger_node.get("_target_")
    if resume is None or not resume.run_id or not target or not issubclass(get_class(target), MLFlowLogger):
        return {}
    return {"run_id": resume.run_id}


def continue_run(logger, resume: Resume, params: dict[str, Any]) -> None:
    """Tag the MLflow run as resumed, and let `logger` log only the steps it does not hold yet."""
    client, run_id = logger.experiment, logger.run_id
    run = client.get_run(run_id)
    new_params = {k: v for k, v in params.items() if k not in run.data.params}
    if new_params:
        logger.log_hyperparams(new_params)
    client.set_tag(run_id, "resumed_from_step", str(resume.step))
    # the steps the store holds, not just the latest: MLflow's async queue writes its batches from several
    # threads, so the interrupted process may have left any of its last steps out
    logged = {key: {m.step for m in client.get_metric_history(run_id, key)} for key in run.data.metrics}
    log_metrics = logger.log_metrics

    def log_new_steps(metrics: dict[str, float], step: int | None = None) -> None:
        new = {k: v for k, v in metrics.items() if step is None or step not in logged.get(k, ())}
        if new:
            log_metrics(new, step)

    # an instance attribute, so that it works for any MLFlowLogger subclass (rnnlab.tracking.logger)
    logger.log_metrics = log_new_steps
