"""Optuna search (`hparams_search=...`, rnnlab/search/): the space grammar, and real searches of tiny trials run
as a user runs them (train.py in a subprocess): pruning, a diverging trial, the returned metric, resume after
SIGKILL."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import optuna
import pytest
from conftest import CONF, ROOT, TINY, new_store, owned_process, run_owned
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from rnnlab.errors import ConfigError
from rnnlab.search.space import parse_space
from rnnlab.search.study import GridSampler, Search, make_pruner

FAST = [*TINY, "callbacks=none"]  # no checkpoints, samples or diagnostics: the trials are all the search needs


def search_command(tmp_path: Path, study: str, *overrides: str) -> list[str]:
    return [sys.executable, "train.py", "hparams_search=lm_lstm", *FAST, f"paths.log_dir={tmp_path}/logs",
            f"hydra.sweeper.study_name={study}", *overrides]


def environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": new_store(tmp_path / "mlflow.db"), "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1"}


def load_study(tmp_path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/logs/optuna.db")


def trial_states(db: Path) -> dict[int, str]:
    """Trial number → state, read-only: Optuna's own reader would create the schema, racing the search's."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            return dict(connection.execute("SELECT number, state FROM trials").fetchall())
    except sqlite3.OperationalError:  # no database or no tables yet
        return {}


def running_with_params(db: Path) -> bool:
    """A trial is RUNNING and ALL its values are sampled: a trial is RUNNING from `ask`, before it has params, and
    gets them one suggestion at a time (a kill between two leaves a partial set, which the retry completes by
    sampling; this waits for as many as the space has, i.e. as any trial has)."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            running, space = connection.execute(
                "SELECT (SELECT COUNT(*) FROM trials JOIN trial_params USING (trial_id) WHERE state = 'RUNNING'), "
                "(SELECT COUNT(DISTINCT param_name) FROM trial_params)").fetchone()
            return running > 0 and running >= space
    except sqlite3.OperationalError:
        return False


def results_file(tmp_path: Path) -> Path:
    (path,) = (tmp_path / "logs" / "multiruns").glob("*/*/optimization_results.yaml")
    return path


# --- the search space -----------------------------------------------------------------------------------------

def test_space_from_params_and_command_line():
    params = {"optimizer": {"lr": "tag(log, interval(1e-4, 1e-2))"},  # nested, as in conf/hparams_search/
              "model.dropout": "interval(0.0, 0.5)",                  # or a dotted key
              "model.hidden_size": "choice(128, 256)", "attention": "choice(none, luong_dot)",
              "model.num_layers": "range(1, 4)", "data.bptt": "tag(int, log, interval(16, 128))", "seed": 7}
    arguments = ["model.hidden_size=choice(16,32,64)", "trainer.max_epochs=2", "+trainer.enable_model_summary=false"]
    space = parse_space(params, arguments)
    assert space.distributions == {
        "optimizer.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "model.dropout": FloatDistribution(0.0, 0.5),
        "model.hidden_size": CategoricalDistribution([16, 32, 64]),  # the command line's, not params'
        "attention": CategoricalDistribution(["none", "luong_dot"]),
        "model.num_layers": IntDistribution(1, 3),                   # range's stop is exclusive, as in Python
        "data.bptt": IntDistribution(16, 128, log=True),
    }
    assert space.fixed == ["seed=7", "trainer.max_epochs=2", "+trainer.enable_model_summary=false"]
    trial = {"optimizer.lr": 0.00123, "attention": "luong_dot", "model.hidden_size": 32}
    assert space.overrides(trial) == [*space.fixed, "optimizer.lr=0.00123", "attention=luong_dot",
                                      "model.hidden_size=32"]


def test_grid_of_a_discrete_space():
    space = parse_space({"a": "choice(x, y)", "b": "range(0.1, 0.35, 0.1)", "c": "tag(int, interval(2, 4))"}, [])
    grid = space.grid()
    assert grid["a"] == ["x", "y"] and grid["c"] == [2, 3, 4]
    assert grid["b"] == pytest.approx([0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match=r"^d: a grid .* needs discrete values"):
        parse_space({"d": "interval(0, 1)"}, []).grid()


@pytest.mark.parametrize("params, arguments, message", [
    ({"optimizer.lr": "interval(1e-3)"}, [], r"^hydra.sweeper.params.optimizer.lr: cannot read .*a search space is"),
    ({"optimizer.lr": "tag(log, interval(0, 1))"}, [], r"^hydra.sweeper.params.optimizer.lr: .*log"),
    ({"optimizer.lr": "interval(1, 0.1)"}, [], r"^hydra.sweeper.params.optimizer.lr: .*low"),
    ({"model.hidden_size": "tag(int, interval(8.5, 16))"}, [], r"needs integer bounds"),
    ({}, ["model.hidden_size=64"], r"^the search space is empty"),
    ({}, ["model.cell=glob(*)"], r"^model.cell=glob\(\*\): .* not a search space Optuna can sample"),
])
def test_space_errors_name_the_key(params, arguments, message):
    with pytest.raises(ConfigError, match=message):
        parse_space(params, arguments)


SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler, "grid": GridSampler}
PRUNERS = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner,
           "threshold": optuna.pruners.ThresholdPruner}


def test_every_sampler_and_pruner_option_builds(make_cfg):
    for group, built in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
        assert sorted(p.stem for p in (CONF / "hydra" / "sweeper" / group).glob("*.yaml")) == sorted(built)
    discrete = ["model.dropout=0.1", "trainer.gradient_clip_val=0.5"]  # and TINY's model.hidden_size
    for (sampler, sampler_class), (pruner, pruner_class) in zip(SAMPLERS.items(), PRUNERS.items()):
        cfg = make_cfg("hparams_search=lm_lstm", f"hydra/sweeper/sampler={sampler}",
                       f"hydra/sweeper/pruner={pruner}", *discrete,
                       *(["hydra.sweeper.pruner.upper=5"] if pruner == "threshold" else []),
                       "hydra.sweeper.params.optimizer.lr='choice(1e-3,3e-3)'")
        settings = HydraConfig.get().sweeper
        space = parse_space(OmegaConf.to_container(settings.params, resolve=True), [*TINY, *discrete])
        search = Search(settings, cfg, launcher=None)
        assert type(search._sampler(space, offset=3)) is sampler_class
        assert type(make_pruner(settings.pruner)) is pruner_class
    assert search.n_trials == 2  # the grid's size, below n_trials=20
    make_cfg("hparams_search=lm_lstm", "hydra/sweeper/pruner=threshold")
    with pytest.raises(ConfigError, match="^hydra.sweeper.pruner: .*lower.*upper"):
        make_pruner(HydraConfig.get().sweeper.pruner)


def test_trial_callback_refuses_to_run_outside_a_search(monkeypatch):
    from rnnlab.search.pruning import PruningCallback

    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # as in a plain script (a test before may set it)
    with pytest.raises(ConfigError, match="runs only inside one"):
        PruningCallback(trial=0, monitor="val/loss")


# --- real searches --------------------------------------------------------------------------------------------

@pytest.mark.slow  # ~17 s: four trials through train.py; the spaces, samplers and pruners are unit-tested above
@pytest.mark.usefixtures("one_thread")
def test_search_prunes_records_failures_and_returns_the_metric(tmp_path):
    """Four trials on a grid of learning rates: 3e-3 learns (COMPLETE, 2 epochs), 1e-5 barely moves and the
    threshold pruner stops it after its first epoch (PRUNED), 1e12 diverges to val/ppl=inf (FAIL), and -1 is
    refused by the job (FAIL); the study goes on after each."""
    import mlflow

    command = search_command(tmp_path, "prune", "trainer.max_epochs=2", "optimized_metric=val/ppl",
                             "optimizer.lr=choice(3e-3,1e-5,1e12,-1)", "model.dropout=0",
                             "trainer.gradient_clip_val=0.5", "hydra/sweeper/sampler=grid",
                             "hydra/sweeper/pruner=threshold",
                             "hydra.sweeper.pruner.upper=65")  # val/ppl after epoch 0: about 50 and 80
    done = run_owned(command, cwd=ROOT, env=environment(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    trials = {t.params["optimizer.lr"]: t for t in load_study(tmp_path, "prune").trials}
    assert len(trials) == 4
    complete, pruned, diverged, refused = trials[3e-3], trials[1e-5], trials[1e12], trials[-1]
    assert complete.state is TrialState.COMPLETE and sorted(complete.intermediate_values) == [0, 1]
    assert pruned.state is TrialState.PRUNED and list(pruned.intermediate_values) == [0]
    assert pruned.intermediate_values[0] > 65 and pruned.user_attrs["pruned_at_epoch"] == 0
    assert diverged.state is TrialState.FAIL and diverged.user_attrs["fail_reason"] == "val/ppl=inf"
    assert refused.state is TrialState.FAIL and "optimizer.lr=-1 is invalid" in refused.user_attrs["fail_reason"]

    results = OmegaConf.load(results_file(tmp_path))
    assert results.trials == {"COMPLETE": 1, "PRUNED": 1, "FAIL": 2}
    assert results.best_trial == complete.number and results.best_params == {"optimizer.lr": 3e-3}
    # the value optimised is what the job returned: its optimized_metric, as in its own metrics.json
    job_metrics = OmegaConf.load(results_file(tmp_path).parent / str(complete.number) / "metrics.json")
    assert results.best_value == complete.value == pytest.approx(job_metrics["val/ppl"])

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = {t.number: client.get_run(t.user_attrs["mlflow_run_id"]) for t in (complete, pruned, diverged)}
    assert {number: run.data.tags["optuna.trial"] for number, run in runs.items()} == {n: str(n) for n in runs}
    parents = {run.data.tags.get("mlflow.parentRunId") for run in runs.values()}
    assert len(parents) == 1 and None not in parents  # every trial a child of the search's one parent run
    experiment = client.get_experiment(runs[complete.number].info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the search's experiment
    history = {n: len(client.get_metric_history(run.info.run_id, "val/ppl")) for n, run in runs.items()}
    assert history[complete.number] == 2 and history[pruned.number] == 1  # pruning stopped the training
    assert runs[pruned.number].info.status == "FINISHED"
    assert runs[pruned.number].data.tags["optuna.pruned_at_epoch"] == "0"


@pytest.mark.slow  # ~20 s: a search killed and run again; the search itself is tested above
@pytest.mark.usefixtures("one_thread")
def test_killed_search_resumes_where_it_stopped(tmp_path):
    """SIGKILL during trial 1; the same command again marks it FAIL (interrupted), reruns its values first,
    keeps the finished trials and ends with n_trials counted. The space's lr comes from the command line."""
    command = search_command(tmp_path, "resume", "logger=none", "hydra.sweeper.n_trials=2",
                             "hydra.sweeper.params.optimizer.lr='tag(log, interval(1e-3, 1e-2))'")
    with owned_process(command, cwd=ROOT, env=environment(tmp_path), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL) as search:
        deadline = time.monotonic() + 300
        while True:
            assert search.poll() is None, "the search ended before it could be killed"
            assert time.monotonic() < deadline, "no trial finished and the next started within 300 s"
            states = trial_states(tmp_path / "logs" / "optuna.db")
            if "COMPLETE" in states.values() and running_with_params(tmp_path / "logs" / "optuna.db"):
                break  # leaving the block kills the search's whole process group (SIGKILL)
            time.sleep(0.2)
    states = trial_states(tmp_path / "logs" / "optuna.db")  # as the kill left them
    (killed,) = [number for number, state in states.items() if state == "RUNNING"]
    trials = load_study(tmp_path, "resume").trials
    assert trials[killed].state is TrialState.RUNNING  # as the killed search left it
    before = {t.number: (t.value, t.datetime_complete) for t in trials if t.state is TrialState.COMPLETE}

    done = run_owned(command, cwd=ROOT, env=environment(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = load_study(tmp_path, "resume").trials
    interrupted = trials[killed]
    assert interrupted.state is TrialState.FAIL and "left running" in interrupted.user_attrs["interrupted"]
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == killed]
    assert retry.state is TrialState.COMPLETE and retry.params == interrupted.params
    assert {t.number: (t.value, t.datetime_complete) for t in trials if t.number in before} == before
    assert [t.state for t in trials if t.number != killed] == [TrialState.COMPLETE] * 2  # n_trials, counted
    assert all(t.distributions["optimizer.lr"] == FloatDistribution(1e-3, 1e-2, log=True) for t in trials)

    results = OmegaConf.load(results_file(tmp_path))  # only the second run got to the end
    assert results.trials == {"COMPLETE": 2, "FAIL": 1}
    assert results.best_value == min(t.value for t in trials if t.state is TrialState.COMPLETE)
    rerun = {int(p.name) for p in results_file(tmp_path).parent.iterdir() if p.name.isdigit()}
    assert rerun == {t.number for t in trials if t.number > killed}  # job directory = trial number; none redone


@pytest.mark.parametrize("search", ["lm_lstm", "lm_transformer"])
def test_a_search_space_names_keys_of_its_model_and_every_corner_builds(search):
    """Every key a shipped search varies is a key of the config it composes (a misspelt key would only fail at
    its first trial, after a sweep started), and the corners of its space build the model."""
    import itertools

    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rnnlab.models import registry

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"hparams_search={search}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    space = parse_space(OmegaConf.to_container(cfg.hydra.sweeper.params), [])
    assert space.distributions and all(OmegaConf.select(cfg, key, default=None) is not None
                                       for key in space.distributions)
    model_keys = {k: d for k, d in space.distributions.items() if k.startswith("model.")}
    corners = [d.choices if isinstance(d, CategoricalDistribution) else (d.low, d.high) for d in model_keys.values()]
    for values in itertools.product(*corners):
        model = {**OmegaConf.to_container(cfg.model, resolve=True),
                 **{key.removeprefix("model."): value for key, value in zip(model_keys, values)}}
        network = registry.build(model, "lm", vocab_size=20)
        assert network(torch.zeros(2, 8, dtype=torch.long))[0].shape == (2, 8, 20)
