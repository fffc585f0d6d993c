"""An Optuna study run through Hydra's launcher: ask for trials, launch them as jobs, tell their outcome.

Each trial is one ordinary `train.py` job (Hydra callbacks, MLflow run and job directory included), given
the sampled values as overrides plus `callbacks.optuna_pruning` (rnnlab.search.pruning), through which it
reports `optimized_metric` after every validation and is stopped when the pruner says so. The job returns
`optimized_metric`; the trial's outcome is

    COMPLETE   the returned value, when it is a finite number
    PRUNED     the pruner stopped it (its value: the last one reported)
    FAIL       the job raised, or returned no value, NaN or ±inf (the reason: user attr `fail_reason`)

and the study goes on to the next trial either way.

The study lives in `storage` under `study_name`, so the same command run again resumes it: finished trials
stay and count towards `n_trials`; a trial left RUNNING by a killed search is marked FAIL with user attr
`interrupted`, does not count, and its parameters are queued to run again first. The sampler's seed is
offset by the number of trials already in the study, so that a resumed search does not replay the random
draws of the first one. One search process per study: a second one would take the first one's running
trials for interrupted ones.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn
from hydra.errors import InstantiationException
from hydra.plugins.launcher import Launcher
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from rnnlab.errors import ConfigError
from rnnlab.search.space import SearchSpace, parse_space
from rnnlab.tracking.mlflow_store import sqlite_path

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"
# The job's side of a trial (rnnlab.search.pruning), which finds the study from the job's hydra.sweeper. No
# ${...} in here: whoever reads a job's overrides from its config would get them resolved, and unparseable.
TRIAL_CALLBACK = ("+callbacks.optuna_pruning={{_target_:rnnlab.search.pruning.PruningCallback,"
                  "trial:{number},monitor:{metric}}}")


class Search:
    """One search: its settings (hydra.sweeper), the sweep's composed config, and the launcher of its jobs."""

    def __init__(self, settings: DictConfig, config: DictConfig, launcher: Launcher):
        self.settings, self.config, self.launcher = settings, config, launcher
        self.metric = config.get("optimized_metric")
        self.n_trials = settings.n_trials  # or fewer: a grid has only so many points
        self.storage: optuna.storages.RDBStorage | None = None
        self.study: optuna.Study | None = None

    def run(self, arguments: list[str], validate: Callable[[Sequence[Sequence[str]]], None]) -> dict[str, Any]:
        """arguments: the command line's overrides; validate: composes a batch of overrides without running
        it (Sweeper.validate_batch_is_legal), so that a bad key fails before the first trial."""
        if not self.metric:
            raise ConfigError("optimized_metric is not set: name the metric the search optimises, e.g. "
                              "optimized_metric=val/loss")
        _check(self.settings)
        space = parse_space(OmegaConf.to_container(self.settings.params or {}, resolve=True), arguments)
        validate([self._job(space, space.probe(), number=0)])
        _route_optuna_logging()
        study = self.open_study(space)

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        while (remaining := self.n_trials - len(counted(study))) > 0:
            trials = [study.ask(space.distributions) for _ in range(min(self.settings.n_jobs, remaining))]
            jobs = [self._job(space, trial.params, trial.number) for trial in trials]
            try:
                returns = self.launcher.launch(jobs, initial_job_idx=trials[0].number)  # job dir = trial number
            except BaseException as stop:  # Ctrl-C or SIGTERM; a job that fails on its own is told FAIL below
                for trial in trials:
                    self.interrupt(trial.number, reason=repr(stop))
                raise
            for trial, job in zip(trials, returns):
                self._tell(trial, job)

        results = summary(study, self.settings, self.metric)
        (sweep_dir / RESULTS_FILE).write_text(OmegaConf.to_yaml(results))
        log.info("search %r done: %s\n%s", study.study_name, sweep_dir / RESULTS_FILE, OmegaConf.to_yaml(results))
        return results

    def open_study(self, space: SearchSpace) -> optuna.Study:
        """Create the study, or load it and hand its interrupted trials back to the queue."""
        settings = self.settings
        db = sqlite_path(settings.storage)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        self.storage = optuna.storages.RDBStorage(settings.storage)
        self.study = study = optuna.create_study(
            study_name=settings.study_name, storage=self.storage, load_if_exists=True, direction=settings.direction,
            pruner=make_pruner(settings.pruner), sampler=optuna.samplers.RandomSampler())  # sampler: below
        direction = study.direction.name.lower()
        if direction != settings.direction:
            raise ConfigError(f"study {study.study_name!r} in {settings.storage} is to {direction}, not "
                              f"hydra.sweeper.direction={settings.direction}: name a new study with "
                              f"hydra.sweeper.study_name")
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.interrupt(trial.number, reason="left running by a search that was stopped")
        study.sampler = self._sampler(space, offset=len(study.trials))
        if study.trials:
            log.info("resuming study %r (%s): %d of %d trials done", study.study_name, settings.storage,
                     len(counted(study)), self.n_trials)
        return study

    def _sampler(self, space: SearchSpace, offset: int) -> optuna.samplers.BaseSampler:
        """hydra.sweeper.sampler, its seed offset by the trials already run; a grid sampler gets the space."""
        sampler = self.settings.sampler
        if not sampler:
            return optuna.samplers.TPESampler()
        settings = {}
        if sampler.get("seed") is not None:
            settings["seed"] = sampler.seed + offset
        sampler_class = get_class(sampler._target_)
        if issubclass(sampler_class, optuna.samplers.GridSampler):
            if not issubclass(sampler_class, GridSampler):
                raise ConfigError(f"hydra.sweeper.sampler._target_={sampler._target_} stops the study the way only "
                                  f"study.optimize allows: use hydra/sweeper/sampler=grid")
            settings["search_space"] = grid = space.grid()
            points = math.prod(len(values) for values in grid.values())
            if points < self.n_trials:
                log.info("the grid has %d points: the search ends when each has run", points)
                self.n_trials = points
        return _instantiate(sampler, "sampler", **settings)

    def interrupt(self, number: int, reason: str) -> None:
        """A trial cut short from outside: FAIL, not counted, its parameters first in the queue again."""
        log.warning("trial %d interrupted (%s): marked FAIL; its parameters run again first", number, reason)
        study_id = self.storage.get_study_id_from_name(self.study.study_name)
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
        self.storage.set_trial_user_attr(trial_id, "interrupted", reason)
        frozen = self.study.tell(number, state=TrialState.FAIL)
        self.study.enqueue_trial(frozen.params, user_attrs={"retry_of": number})

    def _job(self, space: SearchSpace, params: dict[str, Any], number: int) -> list[str]:
        metric = Override._get_value_element_as_str(self.metric)
        return [*space.overrides(params), TRIAL_CALLBACK.format(number=number, metric=metric)]

    def _tell(self, trial: optuna.Trial, job: JobReturn) -> None:
        study, metric = self.study, self.metric
        try:
            value = job.return_value  # Hydra's accessor: for a failed job it names the job and raises its error
        except Exception as error:
            log.error("trial %d: its job raised", trial.number, exc_info=error)
            return _fail(study, trial, f"the job raised {error!r}")
        attrs = study.trials[trial.number].user_attrs  # what the job's callback recorded
        if "pruned_at_epoch" in attrs:
            frozen = study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d PRUNED after epoch %d: %s=%s %s", trial.number, attrs["pruned_at_epoch"], metric,
                     frozen.value, trial.params)
            return
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return _fail(study, trial, f"{metric}={value}" if value is not None else
                         f"the job returned no {metric}: is optimized_metric one of the metrics it logs?")
        study.tell(trial, value)
        log.info("trial %d COMPLETE: %s=%g %s; best so far: trial %d, %g", trial.number, metric, value,
                 trial.params, study.best_trial.number, study.best_value)


class GridSampler(optuna.samplers.GridSampler):
    """`hydra/sweeper/sampler=grid`: Optuna's grid sampler, for a search that asks and tells. Optuna's calls
    study.stop() after the grid's last point, which works only inside study.optimize; the search instead
    runs at most as many trials as the grid has points."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        pass


def counted(study: optuna.Study) -> list[FrozenTrial]:
    """The finished trials that count towards n_trials: all but the interrupted ones."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                 TrialState.FAIL))
            if "interrupted" not in t.user_attrs]


def make_pruner(pruner: DictConfig | None) -> optuna.pruners.BasePruner:
    """hydra.sweeper.pruner; null means no pruning (where Optuna's own default would be a median pruner)."""
    return _instantiate(pruner, "pruner") if pruner else optuna.pruners.NopPruner()


def summary(study: optuna.Study, settings: DictConfig, metric: str) -> dict[str, Any]:
    states = Counter(t.state for t in study.trials)
    results = {"name": "optuna", "study_name": study.study_name, "storage": settings.storage,
               "optimized_metric": metric, "direction": settings.direction,
               "trials": {state.name: states[state] for state in TrialState if states[state]},
               "best_trial": None, "best_value": None, "best_params": None, "best_mlflow_run_id": None}
    if states[TrialState.COMPLETE]:
        best = study.best_trial
        results.update(best_trial=best.number, best_value=best.value, best_params=best.params,
                       best_mlflow_run_id=best.user_attrs.get("mlflow_run_id"))
    else:
        log.warning("search %r: no trial completed, so there is no best value", study.study_name)
    return results


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr("fail_reason", reason)
    study.tell(trial, state=TrialState.FAIL)
    log.warning("trial %d FAIL: %s %s", trial.number, reason, trial.params)


def _instantiate(node: DictConfig, name: str, **settings: Any) -> Any:
    try:
        return instantiate(node, **settings)
    except InstantiationException as error:  # e.g. an option of another pruner, or a threshold pruner without bounds
        raise ConfigError(f"hydra.sweeper.{name}: {error.__cause__ or error}") from None


def _check(settings: DictConfig) -> None:
    if not settings.study_name:
        raise ConfigError("hydra.sweeper.study_name is not set: name the study (a search resumes by its name), "
                          "or use a preset such as hparams_search=lm_lstm")
    if settings.direction not in ("minimize", "maximize"):
        raise ConfigError(f"hydra.sweeper.direction={settings.direction} is invalid: minimize or maximize")
    for key in ("n_trials", "n_jobs"):
        value = settings[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"hydra.sweeper.{key}={value} is invalid: must be a positive integer")


def _route_optuna_logging() -> None:
    # Optuna prints through a handler of its own; hand its records to Hydra's logging (console and log file)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
