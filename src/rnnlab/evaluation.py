"""What `python eval.py` does: score a task=translation checkpoint on a split and record the scores in MLflow.

The split is decoded and scored by the task's own evaluation loop (trainer.test, or trainer.validate for
split=val), so the numbers are computed exactly as in training: teacher-forced loss/ppl, sacreBLEU
bleu (cased, 13a), bleu_lc and chrf of the detokenized hypotheses against the raw references.

The data module must encode sources with the checkpoint's own vocabulary. Its vocabulary settings
(data.tokenizer, vocab_size, joint_vocab, min_frequency) are taken from the checkpoint, so the
vocabulary trained (or found in the cache) for the data is the checkpoint's; if the training text
differed (e.g. another data.max_train_pairs), the two differ and eval.py says so instead of scoring
with mismatched ids.

Where the scores go. ckpt = an MLflow run id: into that run, as `eval/<decoder>/<split>/<metric>`
(e.g. eval/beam5_lp1.0/test/bleu), so the run's own test/* from training stay as they were, with
the translations as artifacts under eval/<decoder>/<split>/. ckpt = a file: a new run of
`experiment_name` with `<split>/<metric>`, tagged `evaluated_checkpoint` (the file) and, when the
store holds the run whose directory the file is in, `evaluated_run_id`.
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

from rnnlab.checkpoints import is_run_id, resolve_checkpoint
from rnnlab.errors import ConfigError
from rnnlab.tasks.translation import DECODING_KEYS, TranslationTask, check_decoding, decoder_name

log = logging.getLogger(__name__)

SPLITS = ("test", "val")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Score cfg.ckpt on cfg.split of cfg.data; print and log the scores; return them."""
    _quiet()
    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split} is invalid: choose one of {', '.join(SPLITS)}")
    settings = {key: cfg[key] for key in DECODING_KEYS if cfg[key] is not None}  # the others: the checkpoint's
    check_decoding(settings, prefix="")
    if str(cfg.device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={cfg.device} but no CUDA device is visible; use device=cpu")
    ckpt = str(cfg.ckpt) if cfg.ckpt is not None else None
    with tempfile.TemporaryDirectory() as work:
        path = resolve_checkpoint(ckpt, cfg.tracking_uri, work)
        task = TranslationTask.from_checkpoint(path, ckpt, cfg.device, **settings)
        datamodule = _datamodule(cfg, task.hparams.tokenizer, ckpt)
        decoder = decoder_name(task.hparams)
        task.artifact_root = f"eval/{decoder}/{cfg.split}"
        trainer = L.Trainer(accelerator="gpu" if str(cfg.device).startswith("cuda") else "cpu", devices=1,
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=work)
        run_loop = trainer.test if cfg.split == "test" else trainer.validate
        torch.manual_seed(cfg.seed)  # the draws of decode=sample
        metrics = {key: float(value) for key, value in run_loop(task, datamodule=datamodule, verbose=False)[0].items()}
        run_id = _record(cfg, ckpt, path, decoder, metrics, task, Path(work) / task.artifact_root)
    _report(metrics, decoder, run_id, cfg)
    return metrics


def _datamodule(cfg: DictConfig, tokenizer: dict, ckpt: str):
    """cfg.data with the checkpoint's vocabulary settings, checked to give the checkpoint's vocabulary."""
    options = OmegaConf.to_container(cfg.data, resolve=True)
    data_class = get_class(options.pop("_target_"))
    options.update(tokenizer["settings"])  # tokenizer, vocab_size, joint_vocab, min_frequency
    datamodule = data_class(**options)  # a bad option raises its own one-line ConfigError
    datamodule.prepare_data()
    datamodule.setup("test")
    if datamodule.tokenizer_state() != tokenizer:
        raise ConfigError(f"ckpt={ckpt}: the vocabulary of this data (trained on its training split with the "
                          f"checkpoint's settings {tokenizer['settings']}) is not the checkpoint's: it was trained "
                          f"on other text; give the data.* options of the training run (data=, "
                          f"data.max_train_pairs, ...)")
    return datamodule


def _record(cfg: DictConfig, ckpt: str, path: Path, decoder: str, metrics: dict[str, float], task: TranslationTask,
            artifacts: Path) -> str:
    """Log metrics, signatures and translations to MLflow (see the module docstring); the run id used."""
    import mlflow

    from rnnlab.tracking import mlflow_store, ui

    mlflow_store.ensure_store(cfg.tracking_uri)
    client = mlflow.MlflowClient(cfg.tracking_uri)
    tags = dict(task.signatures)  # the same sacreBLEU settings as in training
    if is_run_id(ckpt):
        run_id, prefix = ckpt, f"eval/{decoder}/"
        ui.mark_model_development(client, client.get_run(run_id).info.experiment_id)
    else:
        experiment = client.get_experiment_by_name(cfg.experiment_name)
        experiment_id = experiment.experiment_id if experiment else \
            client.create_experiment(cfg.experiment_name, artifact_location=cfg.artifact_location)
        ui.mark_model_development(client, experiment_id)
        tags |= {"evaluated_checkpoint": str(path.resolve()), "decoder": decoder, "data": _data_name(cfg)}
        source_run = _run_of_checkpoint(client, path)
        if source_run:
            tags["evaluated_run_id"] = source_run
        run_id, prefix = client.create_run(experiment_id, run_name=f"eval {path.name} {decoder}").info.run_id, ""
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    for key, value in metrics.items():
        client.log_metric(run_id, f"{prefix}{key}", value)
    if artifacts.is_dir():
        client.log_artifacts(run_id, str(artifacts), task.artifact_root)
    if not prefix:
        client.set_terminated(run_id)
    return run_id


def _data_name(cfg: DictConfig) -> str:
    """The data= option (e.g. multi30k), or the data module's class outside a Hydra run."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.choices.get("data"))
    return str(cfg.data._target_)


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


def _report(metrics: dict[str, float], decoder: str, run_id: str, cfg: DictConfig) -> None:
    import mlflow

    from rnnlab.tracking import ui

    experiment_id = mlflow.MlflowClient(cfg.tracking_uri).get_run(run_id).info.experiment_id
    width = max(len(key) for key in metrics)
    lines = [f"{cfg.split} scores, decoder {decoder}", "-" * (width + 14)]
    lines += [f"{key:<{width}}  {metrics[key]:>12.4f}" for key in sorted(metrics)]
    lines += ["-" * (width + 14), f"mlflow run id:  {run_id}  ({cfg.tracking_uri})",
              f"browse run:     {ui.run_link(cfg.tracking_uri, experiment_id, run_id)}"]
    print("\n".join(lines), flush=True)
