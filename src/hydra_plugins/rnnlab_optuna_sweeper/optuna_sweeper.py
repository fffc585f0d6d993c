"""Hydra sweeper plugin `hydra/sweeper=optuna`: a hyperparameter search with Optuna (rnnlab.search).

Hydra imports every module under hydra_plugins at startup, for every run: this one only registers the config
schema and a thin Sweeper class; Optuna and the search itself are imported when a search starts.
(No `from __future__ import annotations`: Hydra loads this module in a way that breaks dataclasses with it.)
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class OptunaSweeperConf:
    # the sampler and pruner are groups, one YAML per option in conf/hydra/sweeper/{sampler,pruner}/
    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"sampler": "tpe"}, {"pruner": None}])
    _target_: str = "hydra_plugins.rnnlab_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    _recursive_: bool = False  # sampler and pruner stay configs: the search instantiates them (with its seed)
    study_name: str | None = None  # a search resumes by name: running it again continues the study
    storage: str = "sqlite:///${paths.log_dir}/optuna.db"  # beside the MLflow store (logs/mlflow.db)
    direction: str = "minimize"  # of optimized_metric: minimize | maximize
    n_trials: int = 20  # finished trials (COMPLETE, PRUNED, FAIL) in the study when the search ends
    n_jobs: int = 1  # trials launched together (in parallel only with a parallel launcher, e.g. joblib)
    sampler: Any = None  # hydra/sweeper/sampler=tpe | random | grid
    pruner: Any = None  # hydra/sweeper/pruner=median | hyperband | threshold; none by default: never prune
    params: dict[str, Any] = field(default_factory=dict)  # config key → search space (rnnlab/search/space.py)


ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="rnnlab")


class OptunaSweeper(Sweeper):
    def __init__(self, **settings: Any):
        """settings: hydra.sweeper's values; setup() reads the same node from the config, as a config."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        from rnnlab.search.study import Search

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)
        self.search = Search(config.hydra.sweeper, config, self.launcher)

    def sweep(self, arguments: list[str]) -> Any:
        import sys

        from rnnlab.errors import ConfigError

        try:
            return self.search.run(arguments, validate=self.validate_batch_is_legal)
        except ConfigError as error:  # the user's mistake: one line, no stack trace, as train.py does
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
