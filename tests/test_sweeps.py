"""`train.py -m`: one MLflow parent run per sweep, each job's run its child, a summary table at the end;
with the basic, joblib and submitit_local launchers (real subprocess sweeps of tiny models)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from conftest import CONF, ROOT, TINY, compose_train, new_store, owned_process, run_owned
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, read_write

from rnnlab import config
from rnnlab.tracking import mlflow_store, sweep, ui

# each job small: a few batches, no per-epoch extras, no checkpoint copied into MLflow
QUICK = [*TINY, "data.train_tokens=8000", "data.val_tokens=2000", "data.test_tokens=2000",
         "callbacks.gradient_diagnostics=null", "callbacks.samples=null", "callbacks.progress_bar=null",
         "+trainer.enable_progress_bar=false", "logger.mlflow.log_model=false"]


def sweep_command(tmp_path: Path, *overrides: str, fresh: bool = False) -> tuple[list[str], dict[str, str]]:
    """`train.py -m QUICK... overrides` into tmp_path's store, and the environment to run it in. fresh: no store
    there yet, the sweep creates it."""
    uri = f"sqlite:///{tmp_path}/mlflow.db" if fresh else new_store(tmp_path / "mlflow.db")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for name in (sweep.CHILD_ENV, sweep.PARENT_ENV, "HYDRA_FULL_ERROR"):
        env.pop(name, None)
    return [sys.executable, "train.py", "-m", *QUICK, f"paths.log_dir={tmp_path}", *overrides], env


def sweep_cli(tmp_path: Path, *overrides: str, timeout: float = 300,
              fresh: bool = False) -> subprocess.CompletedProcess:
    command, env = sweep_command(tmp_path, *overrides, fresh=fresh)
    return run_owned(command, cwd=ROOT, env=env, timeout=timeout)


def all_runs(client: mlflow.MlflowClient) -> list[mlflow.entities.Run]:
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def runs(tmp_path: Path) -> tuple[mlflow.entities.Run, list[mlflow.entities.Run]]:
    """The one parent run and its children (by job number) in the store."""
    everything = all_runs(mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"))
    parents = [r for r in everything if "sweep.command" in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in everything]
    parent = parents[0]
    children = sorted((r for r in everything if r is not parent), key=lambda r: int(r.data.tags["sweep.job"]))
    for child in children:  # every other run is a child, in the parent's experiment: the UI nests them
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.experiment_id == parent.info.experiment_id
    return parent, children


def summary(tmp_path: Path, parent: mlflow.entities.Run) -> tuple[str, list[dict[str, str]]]:
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    markdown = Path(client.download_artifacts(parent.info.run_id, "sweep_summary.md", str(tmp_path))).read_text()
    table = Path(client.download_artifacts(parent.info.run_id, "sweep_summary.csv", str(tmp_path))).read_text()
    return markdown, list(csv.DictReader(io.StringIO(table)))


def assert_summary_matches(rows: list[dict[str, str]], children: list[mlflow.entities.Run]) -> None:
    assert [row["run_id"] for row in rows] == [child.info.run_id for child in children]
    for row, child in zip(rows, children):
        assert row["status"] == child.info.status
        assert row["overrides"] == child.data.tags["sweep.overrides"]
        assert {key: float(row[key]) for key in child.data.metrics} == child.data.metrics
        assert all(row[key] == "" for key in row if key.startswith(("val/", "test/")) and key not in
                   child.data.metrics)


@pytest.mark.slow  # ~12 s; the Ctrl-C test runs a basic-launcher sweep end to end in make test
def test_failed_jobs_are_children_the_others_still_run_and_the_parent_fails(tmp_path):
    # job 0 trains; jobs 1 and 3 are the user's mistake (dropout 1.5), caught before their runs would exist;
    # job 2 fails inside fit (its checkpoint callback watches a metric that nothing logs)
    result = sweep_cli(tmp_path, "model=rnn", "callbacks.model_checkpoint.monitor=val/loss,val/nope",
                       "model.dropout=0.0,1.5")
    assert result.returncode == 1, result.stdout + result.stderr
    parent, children = runs(tmp_path)
    assert parent.info.status == "FAILED"
    assert parent.info.run_name == "sweep: callbacks.model_checkpoint.monitor=val/loss,val/nope model.dropout=0.0,1.5"
    assert parent.data.tags["sweep.axes"] == parent.info.run_name.removeprefix("sweep: ")
    assert parent.data.tags["sweep.command"].startswith("python train.py -m ")
    assert "model.dropout=0.0,1.5" in parent.data.tags["sweep.command"].split()
    overrides = [child.data.tags["sweep.overrides"] for child in children]
    assert overrides == [f"callbacks.model_checkpoint.monitor={m} model.dropout={d}"
                         for m in ("val/loss", "val/nope") for d in ("0.0", "1.5")]
    assert [child.info.status for child in children] == ["FINISHED", "FAILED", "FAILED", "FAILED"]
    assert "test/ppl" in children[0].data.metrics and "val/loss" in children[2].data.metrics
    assert "could not find the monitored key" in children[2].data.tags["sweep.error"]
    assert children[1].data.tags["sweep.error"] == "error: model.dropout=1.5 is invalid: must be in [0, 1)"
    assert not children[1].data.metrics  # failed before training: a child only to show the failure
    # the user's mistake is one line, not a stack trace, also in a sweep
    assert "error: model.dropout=1.5 is invalid: must be in [0, 1)" in result.stderr
    assert "ConfigError" not in result.stderr

    markdown, rows = summary(tmp_path, parent)
    assert_summary_matches(rows, children)
    lines = markdown.splitlines()
    assert lines[0] == "| job | run | overrides | status | val/loss | val/ppl | val/ppl_gap | test/ppl | fit_seconds |"
    assert lines[2] == (f"| 0 | rnn | {overrides[0]} | FINISHED | {children[0].data.metrics['val/loss']:.4f} | "
                        f"{children[0].data.metrics['val/ppl']:.4f} | {children[0].data.metrics['val/ppl_gap']:.4f} | "
                        f"{children[0].data.metrics['test/ppl']:.4f} | {children[0].data.metrics['fit_seconds']:.4f} |")
    assert "- job 1: error: model.dropout=1.5 is invalid: must be in [0, 1)" in lines
    assert markdown in result.stdout  # also printed when the sweep ends, after its links into the MLflow UI
    store, experiment_id = f"sqlite:///{tmp_path}/mlflow.db", parent.info.experiment_id
    assert f"browse experiment:  {ui.experiment_link(store, experiment_id)}\n" \
           f"browse parent run:  {ui.run_link(store, experiment_id, parent.info.run_id)}\n{markdown}" in result.stdout
    experiment = mlflow.MlflowClient(store).get_experiment(experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    sweep_dir = Path(parent.data.tags["sweep.dir"])
    assert (sweep_dir / "sweep_summary.md").read_text() == markdown


@pytest.mark.slow  # ~30 s: 4 jobs in 2 worker processes; the basic launcher's sweeps above run in `make test`
def test_joblib_jobs_in_parallel_into_a_new_store(tmp_path):
    assert not (tmp_path / "mlflow.db").exists()
    result = sweep_cli(tmp_path, "model=rnn,gru", "seed=1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                       fresh=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    parent, children = runs(tmp_path)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.launcher"] == "joblib"
    assert [child.data.tags["sweep.overrides"] for child in children] == [
        "model=rnn seed=1", "model=rnn seed=2", "model=gru seed=1", "model=gru seed=2"]
    assert [child.info.status for child in children] == ["FINISHED"] * 4
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    for child in children:  # every metric of every job arrived, written by two worker processes into a new store
        job_dir = Path(parent.data.tags["sweep.dir"]) / child.data.tags["sweep.job"]
        final = json.loads((job_dir / "metrics.json").read_text())
        assert set(final) <= set(child.data.metrics)
        for key in (k for k in final if k.startswith(("val/", "test/"))):
            assert child.data.metrics[key] == pytest.approx(final[key], rel=1e-6)
        steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, "train/loss"))
        assert len(steps) >= 10 and steps == list(range(steps[0], steps[0] + len(steps)))
    _, rows = summary(tmp_path, parent)
    assert_summary_matches(rows, children)


@pytest.mark.slow  # ~25 s: a subprocess per job
def test_submitit_local_jobs_are_children(tmp_path):
    result = sweep_cli(tmp_path, "model=rnn,gru", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    parent, children = runs(tmp_path)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.launcher"] == "submitit_local"
    assert [(child.info.run_name, child.info.status) for child in children] == [("rnn", "FINISHED"),
                                                                                 ("gru", "FINISHED")]
    assert all("test/ppl" in child.data.metrics for child in children)


def signal_masks(pid: int) -> str:
    """The signals a process blocks and ignores (Linux), e.g. "SigBlk: 0000000000000000, SigIgn: ..."."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return "signal masks unknown"
    return ", ".join(line.replace("\t", " ") for line in lines if line.startswith(("SigBlk", "SigIgn")))


def test_ctrl_c_ends_the_parent_killed(tmp_path):
    """Ctrl-C (SIGINT to the sweep's process group) while the first job trains."""
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow_store.ensure_store(client.tracking_uri)  # before we look into it while the sweep writes
    command, env = sweep_command(tmp_path, "model=rnn,gru", "trainer.max_epochs=1000", "callbacks.early_stopping=null")
    log = tmp_path / "sweep.log"  # a file, not a pipe: a pipe nobody reads fills up and stalls the sweep
    with log.open("w") as output, owned_process(command, cwd=ROOT, env=env, stdout=output,
                                                stderr=subprocess.STDOUT) as process:
        deadline = time.monotonic() + 300
        while not any(r.info.status == "RUNNING" and "train/loss" in r.data.metrics and "sweep.job" in r.data.tags
                      for r in all_runs(client)):  # interrupt while the first job trains, not while it sets up
            assert process.poll() is None, f"the sweep ended before it was interrupted: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no job logged a step within 300 s: {log.read_text()[-3000:]}"
            time.sleep(0.5)
        masks = signal_masks(process.pid)
        os.killpg(process.pid, signal.SIGINT)
        interrupted = time.monotonic()
        try:
            process.wait(timeout=240)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the sweep still ran 240 s after Ctrl-C ({masks}): {log.read_text()[-3000:]}")
    assert process.returncode != 0
    parent, children = runs(tmp_path)
    stopped = f"exited {time.monotonic() - interrupted:.0f} s after SIGINT: {log.read_text()[-3000:]}"
    assert parent.info.status == "KILLED", stopped
    assert [child.info.run_name for child in children] == ["rnn"], stopped  # the second job never started
    assert children[0].info.status in ("FAILED", "KILLED")  # Lightning ends an interrupted fit FAILED


# --- without a sweep process: single runs, presets, launcher settings ------------------------------------


@pytest.fixture
def fresh_hydra():
    """Hydra's global state as a test found it, whatever the test composed."""
    yield
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None


def compose_with_hydra(overrides: list[str], tmp_path: Path) -> DictConfig:
    """The composed config with its hydra node (the sweeper's and launcher's settings), HydraConfig set."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.log_dir={tmp_path}"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_only_a_sweeps_job_joins_its_parent(tmp_path, monkeypatch, fresh_hydra):
    child = {"experiment": "lm-sweeps", "tags": {"mlflow.parentRunId": "abc", "sweep.job": "3"}}
    monkeypatch.setenv(sweep.CHILD_ENV, json.dumps(child))
    cfg = compose_with_hydra(["logger=mlflow", "+logger.mlflow.tags={owner: me}"], tmp_path)
    assert sweep.child_run_kwargs(cfg.logger.mlflow) == {}  # a single run is built exactly as configured
    with read_write(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    assert sweep.child_run_kwargs(cfg.logger.mlflow) == {
        "experiment_name": "lm-sweeps", "tags": {"owner": "me", "mlflow.parentRunId": "abc", "sweep.job": "3"}}
    csv_logger = compose_with_hydra(["logger=csv"], tmp_path).logger.csv
    assert sweep.child_run_kwargs(csv_logger) == {}


def test_the_command_line_replaces_a_presets_axis():
    axes, fixed = sweep.sweep_axes(["experiment=compare_cells", "seed=7,8", "model=rnn", "+trainer.x=false"],
                                   {"model": "rnn,lstm,gru", "seed": "1,2,3", "optimizer.lr": "0.1,0.2"})
    assert axes == ["optimizer.lr=0.1,0.2", "seed=7,8"]
    assert fixed == ["experiment=compare_cells", "model=rnn", "+trainer.x=False"]  # as the sweeper writes them
    space = OmegaConf.create({"optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}})
    assert sweep.sweep_axes([], space)[0] == ['optimizer.lr={"type":"float","low":0.0001,"high":0.01,"log":true}']


@pytest.mark.parametrize(("preset", "axes"), [
    ("compare_cells", {"model": "rnn,lstm,gru", "seed": "1,2,3"}),
    ("compare_attention", {"attention": "none,bahdanau,luong_dot,luong_general,luong_concat,local"}),
])
def test_presets_define_their_grid_and_every_job_is_valid(preset, axes, tmp_path, fresh_hydra):
    params = compose_with_hydra([f"experiment={preset}"], tmp_path).hydra.sweeper.params
    assert OmegaConf.to_container(params) == axes
    grid = itertools.product(*([(key, value) for value in values.split(",")] for key, values in axes.items()))
    for job in grid:
        cfg = compose_train([f"experiment={preset}", *(f"{key}={value}" for key, value in job)], tmp_path)
        config.check(cfg)
        chosen = {"model": cfg.model.cell, "seed": str(cfg.seed),
                  "attention": cfg.model.get("attention", {}).get("type")}
        assert all(chosen[key] == value for key, value in job)


def test_slurm_preset_sizes_the_allocation_from_the_hardware_profile(tmp_path, fresh_hydra):
    cfg = compose_with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hardware=ddp_multinode",
                              "trainer.devices=4", "trainer.num_nodes=2"], tmp_path)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    assert launcher["partition"] == "gpu" and launcher["max_num_timeout"] == 0
    assert launcher["setup"] == ["export OMP_NUM_THREADS=8 MKL_NUM_THREADS=8"]
    assert type(instantiate(cfg.hydra.launcher)).__name__ == "SlurmLauncher"
    single = OmegaConf.to_container(compose_with_hydra(["hydra/launcher=slurm", "hardware=gpu"], tmp_path)
                                    .hydra.launcher, resolve=True)
    assert (single["nodes"], single["tasks_per_node"], single["gpus_per_node"]) == (1, 1, 1)
