"""What a training run records about itself, as one callback: before fitting, the MLflow run's tags, params and
config (or, resumed, the same run told where it goes on) and run.json, by which resume= finds the run; after
testing (`finish`), metrics.json, the loss curve, the artifacts, run.json marked finished and the console table.

Only process 0 records (under DDP every process holds the callback)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning.pytorch as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf

from rnnlab import resume
from rnnlab.tracking import ui
from rnnlab.tracking.artifacts import log_files
from rnnlab.tracking.run_info import CurveRecorder, flatten, machine_tags, resolved_yaml, run_tags, write_metrics

log = logging.getLogger(__name__)


class RunRecorder(L.Callback):
    def __init__(self, cfg: DictConfig, resumed: resume.Resume | None, store: str | None):
        self.cfg, self.resumed, self.store = cfg, resumed, store
        self.output_dir = Path(cfg.paths.output_dir)
        self.curves = CurveRecorder()  # a callback of its own: the trainer must call it too (callbacks())
        self._recorded = False

    def callbacks(self) -> list[L.Callback]:
        return [self, self.curves]

    @staticmethod
    def mlflow_logger(trainer: L.Trainer) -> MLFlowLogger | None:
        return next((lg for lg in trainer.loggers if isinstance(lg, MLFlowLogger)), None)

    # --- before fitting -------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or self._recorded or not trainer.is_global_zero:
            return
        self._recorded = True
        mlflow_logger = self.mlflow_logger(trainer)
        if mlflow_logger is not None:
            hydra = HydraConfig.get() if HydraConfig.initialized() else None
            choices = dict(hydra.runtime.choices) if hydra else {}
            overrides = list(hydra.overrides.task) if hydra else []
            tags = run_tags(choices, overrides, Path(self.cfg.paths.root_dir)) | machine_tags(pl_module)
            for key, value in tags.items():
                mlflow_logger.experiment.set_tag(mlflow_logger.run_id, key, value)
            ui.mark_model_development(mlflow_logger.experiment, mlflow_logger.experiment_id)
            params = flatten(OmegaConf.to_container(self.cfg, resolve=True))
            if self.resumed is None:
                mlflow_logger.log_hyperparams(params)
            else:  # the same MLflow run goes on
                resume.continue_run(mlflow_logger, self.resumed, params)
            mlflow_logger.experiment.log_text(mlflow_logger.run_id, resolved_yaml(self.cfg), "config.yaml")
        resume.record(self.output_dir, self.cfg, mlflow_logger, self.store)  # run.json: how resume= finds the run

    # --- after testing --------------------------------------------------------------------------
    def finish(self, trainer: L.Trainer, metrics: dict[str, float], fit_seconds: float,
               fit_cpu_seconds: float | None = None) -> None:
        """metrics.json, run.json finished, the loss curve, their artifacts, fit_seconds (wall) and
        fit_cpu_seconds (this process's CPU time) and the console table."""
        if not trainer.is_global_zero:
            return
        cfg, output_dir, mlflow_logger = self.cfg, self.output_dir, self.mlflow_logger(trainer)
        output_dir.mkdir(parents=True, exist_ok=True)
        write_metrics(output_dir / "metrics.json", metrics)
        resume.record(output_dir, cfg, mlflow_logger, self.store, finished=True)
        plot = self.curves.plot(output_dir / "loss_curve.png", title=f"{cfg.task_name}: {cfg.run_name}")
        if mlflow_logger is not None:
            log_files([mlflow_logger], [output_dir / "metrics.json", *([plot] if plot else [])])
            mlflow_logger.experiment.log_metric(mlflow_logger.run_id, "fit_seconds", fit_seconds)
            if fit_cpu_seconds is not None:
                mlflow_logger.experiment.log_metric(mlflow_logger.run_id, "fit_cpu_seconds", fit_cpu_seconds)
        report(metrics, mlflow_logger, output_dir, cfg)


def report(metrics: dict[str, float], mlflow_logger: MLFlowLogger | None, output_dir: Path, cfg: DictConfig) -> None:
    """The end-of-run table: final metrics, where the outputs are, the MLflow run and its link."""
    width = max(len(k) for k in metrics)
    lines = ["", "final metrics", "-" * (width + 14)]
    for key in sorted(metrics):
        value = metrics[key]
        text = f"{value:.4f}" if math.isfinite(value) and abs(value) < 1e6 else f"{value:.4g}"
        lines.append(f"{key:<{width}}  {text:>12}")
    lines.append("-" * (width + 14))
    lines.append(f"outputs:        {output_dir}")
    if mlflow_logger is not None:
        uri = cfg.logger.mlflow.tracking_uri
        lines.append(f"mlflow run id:  {mlflow_logger.run_id}  (experiment {cfg.logger.mlflow.experiment_name!r})")
        lines.append(f"browse run:     {ui.run_link(uri, mlflow_logger.experiment_id, mlflow_logger.run_id)}")
        lines.append(f"browse runs:    make ui   (mlflow ui --backend-store-uri {uri})")
        journal = getattr(mlflow_logger, "journal", None)  # what the tracking server missed while unreachable
        if journal is not None and journal.pending():
            lines.append(f"not in MLflow:  {journal.pending()} records, kept in {journal.folder}: "
                         f"make sync ARGS={journal.folder}")
    print("\n".join(lines), flush=True)
