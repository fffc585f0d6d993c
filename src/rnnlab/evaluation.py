"""What `python eval.py` does: score any task's checkpoint on a split and record the scores in MLflow.

The split is scored by the task's own evaluation loop (trainer.test, or trainer.validate for split=val), so the
numbers are computed exactly as in training: task=lm its loss, ppl (and bpc at character level, the optimum's gap
on data that knows it); task=translation its teacher-forced loss/ppl and sacreBLEU bleu (cased, 13a), bleu_lc and
chrf of the detokenized hypotheses against the raw references, decoded with the checkpoint's decoder or the one
given (decode=, beam_size=, ...; settings of another task are refused).

The data. Without data=, the data the checkpoint was trained on: its run's config (`.hydra/config.yaml` in the run
directory of a checkpoint file, the run's `config.yaml` artifact for an MLflow run id). data=... picks other data
(e.g. another test set). Either way the data must encode text as the checkpoint does: a translation checkpoint's
vocabulary settings (data.tokenizer, vocab_size, joint_vocab, min_frequency) are taken from it, and the
vocabulary the data builds must equal the checkpoint's, else eval.py says so instead of scoring with mismatched ids.

Where the scores go. ckpt = an MLflow run id: into that run, as `eval/<label>/<split>/<metric>` (label: the decoder
for translation, e.g. eval/beam5_lp1.0/test/bleu; none for a language model, eval/test/ppl), so the run's own test/*
from training stay as they were, with any artifacts under eval/<label>/<split>/. ckpt = a file: a new run of
`experiment_name` (default `<task>-eval`) with `<split>/<metric>`, tagged `evaluated_checkpoint` (the file) and,
when the store holds the run whose directory the file is in, `evaluated_run_id`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import lightning.pytorch as L
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from rnnlab import allocator, cli, tasks
from rnnlab.checkpoints import is_run_id, resolve_checkpoint
from rnnlab.errors import ConfigError
from rnnlab.tasks.base import Task
from rnnlab.tasks.translation import DECODING_KEYS, check_decoding

log = logging.getLogger(__name__)

SPLITS = ("test", "val")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Score cfg.ckpt on cfg.split of its data (or cfg.data); print and log the scores; return them."""
    _quiet()
    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split} is invalid: choose one of {', '.join(SPLITS)}")
    cli.check_device(cfg.device)
    allocator.configure_from(cfg)
    settings = {key: cfg[key] for key in DECODING_KEYS if cfg.get(key) is not None}  # the others: the checkpoint's
    check_decoding(settings, prefix="")  # named as eval.py's keys, before any download
    ckpt = str(cfg.ckpt) if cfg.ckpt is not None else None
    with tempfile.TemporaryDirectory() as work:
        path = resolve_checkpoint(ckpt, cfg.tracking_uri, work)
        task = tasks.load(path, ckpt, cfg.device, **settings)  # checks the settings against the task
        datamodule = _datamodule(cfg, task, ckpt, path, work)
        label = task.evaluation_label()
        artifact_root = "/".join(part for part in ("eval", label, cfg.split) if part)
        if hasattr(task, "artifact_root"):
            task.artifact_root = artifact_root
        trainer = L.Trainer(accelerator="gpu" if str(cfg.device).startswith("cuda") else "cpu", devices=1,
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=work)
        run_loop = trainer.test if cfg.split == "test" else trainer.validate
        torch.manual_seed(cfg.seed)  # the draws of decode=sample
        metrics = {key: float(value) for key, value in run_loop(task, datamodule=datamodule, verbose=False)[0].items()}
        run_id, experiment_id = _record(cfg, ckpt, path, label, metrics, task, Path(work) / artifact_root,
                                        artifact_root)
    _report(metrics, label, run_id, experiment_id, cfg)
    return metrics


def _datamodule(cfg: DictConfig, task: Task, ckpt: str, path: Path, work: str):
    """The data to score on (see the module docstring), checked to encode text as the checkpoint does."""
    data = cfg.get("data") or _training_data(ckpt, path, cfg.tracking_uri, work)
    options = OmegaConf.to_container(data, resolve=True) if isinstance(data, DictConfig) else dict(data)
    data_class = get_class(options.pop("_target_"))
    tokenizer = task.hparams.get("tokenizer")
    if tokenizer and "settings" in tokenizer:  # translation: tokenizer, vocab_size, joint_vocab, min_frequency
        options.update(tokenizer["settings"])
    datamodule = data_class(**options)  # a bad option raises its own one-line ConfigError
    datamodule.prepare_data()
    datamodule.setup("test")
    state = datamodule.tokenizer_state() if hasattr(datamodule, "tokenizer_state") else None
    # compared on the checkpoint's keys: one it predates (a tagging checkpoint's CoNLL-U tagset) cannot differ
    if tokenizer and state is not None and {key: state.get(key) for key in tokenizer} != tokenizer:
        raise ConfigError(f"ckpt={ckpt}: the vocabulary of this data (trained on its training split with the "
                          f"checkpoint's settings {tokenizer.get('settings', {})}) is not the checkpoint's: it was "
                          f"trained on other text; give the data.* options of the training run (data=, "
                          f"data.max_train_pairs, ...)")
    return datamodule


def _training_data(ckpt: str, path: Path, tracking_uri: str, work: str) -> DictConfig:
    """The `data` config of the run that wrote the checkpoint."""
    if is_run_id(ckpt):
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            saved = mlflow.MlflowClient(tracking_uri).download_artifacts(ckpt, "config.yaml", work)
        except (MlflowException, OSError):
            saved = None
    else:
        saved = path.resolve().parent.parent / ".hydra" / "config.yaml"  # <run dir>/checkpoints/<name>.ckpt
    if saved is None or not Path(saved).is_file() or "data" not in (config := OmegaConf.load(saved)):
        raise ConfigError(f"ckpt={ckpt}: the config of the run that trained it is not at hand, so its data is "
                          f"unknown; give data=<the data it was trained on> (and its data.* options)")
    return config.data


def _record(cfg: DictConfig, ckpt: str, path: Path, label: str | None, metrics: dict[str, float], task: Task,
            artifacts: Path, artifact_root: str) -> tuple[str, str]:
    """Log metrics, signatures and translations to MLflow (see the module docstring); the run and experiment ids."""
    import mlflow

    from rnnlab.tracking import mlflow_store, ui

    mlflow_store.ensure_store(cfg.tracking_uri)
    client = mlflow.MlflowClient(cfg.tracking_uri)
    tags = dict(getattr(task, "signatures", {}))  # translation: the same sacreBLEU settings as in training
    if is_run_id(ckpt):
        run_id, prefix = ckpt, "/".join(part for part in ("eval", label) if part) + "/"
        experiment_id = client.get_run(run_id).info.experiment_id
        ui.mark_model_development(client, experiment_id)
    else:
        name = cfg.get("experiment_name") or f"{task.option.removeprefix('task=')}-eval"
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else \
            client.create_experiment(name, artifact_location=f"{cfg.paths.log_dir}/mlartifacts/{name}")
        ui.mark_model_development(client, experiment_id)
        tags |= {"evaluated_checkpoint": str(path.resolve()), "data": _data_name(cfg)}
        if label:
            tags["decoder"] = label
        source_run = _run_of_checkpoint(client, path)
        if source_run:
            tags["evaluated_run_id"] = source_run
        run_name = " ".join(part for part in ("eval", path.name, label) if part)
        run_id, prefix = client.create_run(experiment_id, run_name=run_name).info.run_id, ""
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    for key, value in metrics.items():
        client.log_metric(run_id, f"{prefix}{key}", value)
    if artifacts.is_dir():
        client.log_artifacts(run_id, str(artifacts), artifact_root)
    if not prefix:
        client.set_terminated(run_id)
    return run_id, experiment_id


def _data_name(cfg: DictConfig) -> str:
    """The data= option (e.g. multi30k), or the data module's class outside a Hydra run."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized() and HydraConfig.get().runtime.choices.get("data"):
        return str(HydraConfig.get().runtime.choices.get("data"))
    return str(cfg.data._target_) if cfg.get("data") else "as trained"


def _run_of_checkpoint(client, path: Path) -> str | None:
    """The training run that wrote path: train.py logs its directory as the param paths.output_dir."""
    run_dir = path.resolve().parent.parent  # <run dir>/checkpoints/<name>.ckpt
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=f"params.`paths.output_dir` = '{run_dir}'", max_results=1)
    return runs[0].info.run_id if runs else None


def _quiet() -> None:
    """stdout and stderr for the scores and real problems: no download bars, no Lightning banners."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")


def _report(metrics: dict[str, float], label: str | None, run_id: str, experiment_id: str, cfg: DictConfig) -> None:
    from rnnlab.tracking import ui

    width = max(len(key) for key in metrics)
    lines = [f"{cfg.split} scores" + (f", decoder {label}" if label else ""), "-" * (width + 14)]
    lines += [f"{key:<{width}}  {metrics[key]:>12.4f}" for key in sorted(metrics)]
    lines += ["-" * (width + 14), f"mlflow run id:  {run_id}  ({cfg.tracking_uri})",
              f"browse run:     {ui.run_link(cfg.tracking_uri, experiment_id, run_id)}"]
    print("\n".join(lines), flush=True)
