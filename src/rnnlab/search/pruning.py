"""`callbacks.optuna_pruning`: a trial of an Optuna search, seen from inside its training job.

The search (rnnlab.search.study) adds it to every trial's overrides, naming the trial's number and the metric;
the study (name, storage, pruner) is the job's `hydra.sweeper`. It is not meant to be selected by hand.
After each validation it reports `monitor` (the search's optimized_metric) to the trial as the intermediate
value of that epoch, and asks the study's pruner whether the trial is worth going on with. If not, it ends
the fit the way early stopping does, so the run still ends normally (checkpoint, metrics, a FINISHED MLflow
run tagged `optuna.pruned_at_epoch`), and records `pruned_at_epoch` on the trial, which the search then
marks PRUNED. A NaN or infinite value is not reported: it ends the fit too, and the search marks the trial
FAIL. The MLflow run is tagged with the study and the trial number, and the trial records the run's id.
"""

from __future__ import annotations

import logging
import math

import lightning.pytorch as L
import optuna
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import MLFlowLogger

from rnnlab.errors import ConfigError
from rnnlab.search.study import make_pruner

log = logging.getLogger(__name__)


class PruningCallback(L.Callback):
    def __init__(self, trial: int, monitor: str):
        search = HydraConfig.get().sweeper if HydraConfig.initialized() else {}
        study_name, storage = search.get("study_name"), search.get("storage")
        if not study_name or not storage:
            raise ConfigError("callbacks.optuna_pruning is a trial of an Optuna search and runs only inside one "
                              "(hparams_search=..., hydra/sweeper=optuna); drop it to train on its own")
        rdb = optuna.storages.RDBStorage(storage)
        # the sampler is never asked here: the trial's values were sampled by the search
        study = optuna.load_study(study_name=study_name, storage=rdb, pruner=make_pruner(search.pruner),
                                  sampler=optuna.samplers.RandomSampler())
        trial_id = rdb.get_trial_id_from_study_id_trial_number(rdb.get_study_id_from_name(study_name), trial)
        state = rdb.get_trial(trial_id).state
        if state is not optuna.trial.TrialState.RUNNING:
            raise ConfigError(f"callbacks.optuna_pruning.trial={trial}: trial {trial} of study {study_name!r} is "
                              f"{state.name}, not running; to rerun its values outside the search, drop the "
                              f"+callbacks.optuna_pruning override")
        self.trial = optuna.trial.Trial(study, trial_id)
        self.number, self.monitor, self.study_name = trial, monitor, study_name

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                logger.experiment.set_tag(logger.run_id, "optuna.study", self.study_name)
                logger.experiment.set_tag(logger.run_id, "optuna.trial", self.number)
                self.trial.set_user_attr("mlflow_run_id", logger.run_id)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # not on_validation_epoch_end: callbacks run that hook before the task logs its epoch metrics
        if trainer.sanity_checking:
            return
        stop = False
        if trainer.is_global_zero:
            stop = self._judge(trainer, trainer.current_epoch)
        trainer.should_stop = trainer.should_stop or trainer.strategy.broadcast(stop)

    def _judge(self, trainer: L.Trainer, epoch: int) -> bool:
        """Report this epoch's value; True when the trial should stop here."""
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:  # e.g. BLEU before its first measurement: nothing to report yet
            return False
        value = float(value)
        if not math.isfinite(value):
            log.warning("trial %d: %s=%s after epoch %d: stopping it (the search records it FAIL)",
                        self.number, self.monitor, value, epoch)
            self.trial.set_user_attr("diverged_at_epoch", epoch)
            return True
        self.trial.report(value, step=epoch)
        if not self.trial.should_prune():
            return False
        log.info("trial %d pruned after epoch %d: %s=%g", self.number, epoch, self.monitor, value)
        self.trial.set_user_attr("pruned_at_epoch", epoch)
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                logger.experiment.set_tag(logger.run_id, "optuna.pruned_at_epoch", epoch)
        return True
