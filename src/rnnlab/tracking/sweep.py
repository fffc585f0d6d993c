"""A Hydra sweep (`train.py -m ...`) as one MLflow parent run with every job's run as its child.

`MLflowSweep` is a Hydra callback (registered in conf/train.yaml under `hydra.callbacks`). Hydra calls
it in two places: in the sweep's own process (`on_multirun_start`/`_end`) and wherever a job runs
(`on_job_start`/`_end`: the same process for the basic launcher, a joblib worker, a submitit
subprocess or a cluster node). It works for any sweeper and launcher, because it relies only on
these hooks:

- on_multirun_start creates the store (once, before any worker races to), the experiment and the
  parent run. What a job needs to join it is kept in the callback itself, which the launchers
  pickle along with the job;
- on_job_start hands the job's training code its experiment and tags in the environment variable
  `CHILD_ENV` (read by `child_run_kwargs`), so the job's run is created as a child;
- on_job_end gives a failed job a FAILED child run (creating one when the job failed before its
  run existed) and records the error;
- the sweep ends in on_multirun_end, or, when a job's failure or an interrupt ends the sweep
  early (Hydra's basic sweeper re-raises a failed job's exception before on_multirun_end), at
  interpreter exit: the parent becomes FINISHED, FAILED (a job failed or the sweep did) or KILLED
  (Ctrl-C / SIGTERM), never stays RUNNING, and gets a summary table of its children.
"""

from __future__ import annotations

import atexit
import csv
import io
import json
import logging
import os
import shlex
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rnnlab.tracking import mlflow_store, ui
from rnnlab.tracking.run_info import task_metrics

log = logging.getLogger(__name__)

CHILD_ENV = "RNNLAB_SWEEP_CHILD"           # JSON {"experiment": name, "tags": {...}} for the job's run
PARENT_ENV = "RNNLAB_SWEEP_PARENT_RUN_ID"  # the parent run's id, for code in the sweep's process
SUMMARY = "sweep_summary"                  # the parent's artifacts sweep_summary.md and .csv


class JobFailed(CompactHydraException):
    """A sweep's job stopped by the user's mistake: Hydra prints only this message, no stack trace."""


def in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def child_run_kwargs(logger_node: DictConfig) -> dict[str, Any]:
    """Extra arguments for a sweep job's MLflow logger: the parent's experiment, the tags that nest it.

    Empty for a single run and for other loggers, so those are built exactly as configured.
    """
    from hydra.utils import get_class
    from lightning.pytorch.loggers import MLFlowLogger

    child = os.environ.get(CHILD_ENV)
    target = logger_node.get("_target_")
    if not child or not in_sweep() or not target or not issubclass(get_class(target), MLFlowLogger):
        return {}
    child = json.loads(child)
    configured = OmegaConf.to_container(logger_node.tags, resolve=True) if logger_node.get("tags") else {}
    return {"experiment_name": child["experiment"], "tags": {**configured, **child["tags"]}}


@dataclass
class Parent:
    """What a job needs to know of its sweep; pickled with the callback into every job's process."""

    run_id: str
    experiment_id: str
    experiment: str
    tracking_uri: str
    fixed_overrides: list[str]   # the command line's overrides that every job shares (canonical form)
    sweep_dir: str


class MLflowSweep(Callback):
    """One MLflow parent run per Hydra sweep; each job's run is its child (see the module docstring)."""

    def __init__(self, summary_metrics: Sequence[str] | None = None):
        # the summary's markdown columns (its CSV has all); none given: those of each job's task
        self.summary_metrics = list(summary_metrics or [])
        self.parent: Parent | None = None
        self.ended = False
        self.interrupted = False

    # --- in the sweep's process ---------------------------------------------------------------

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        params = OmegaConf.select(config, "hydra.sweeper.params")
        if params and os.environ.get("LOCAL_RANK", "0") == "0":  # not again in each DDP rank Lightning starts
            grid = " ".join(f"{key}={_compact(value)}" for key, value in params.items())
            log.warning(f"warning: this config defines a sweep ({grid}); without -m it runs one job, not the sweep")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import mlflow

        logger = OmegaConf.select(config, "logger.mlflow")
        if not logger:
            log.info("no MLflow logger (logger.mlflow): the sweep's runs are not grouped under a parent run")
            return
        # Hydra has not set it yet, but ${hydra:...} must resolve here; on this very config, so that
        # ${now:...} in hydra.sweep.dir is resolved (and cached) once, for us and the sweeper alike
        HydraConfig.instance().set_config(config)
        OmegaConf.set_readonly(config.hydra, None)  # as it was: set_config made it read-only
        tracking_uri = logger.tracking_uri
        mlflow_store.ensure_store(tracking_uri)
        client = mlflow.MlflowClient(tracking_uri)
        experiment_id = _experiment_id(client, config.experiment_name, logger.get("artifact_location"))
        ui.mark_model_development(client, experiment_id)

        overrides = list(config.hydra.overrides.task)
        axes, fixed = sweep_axes(overrides, config.hydra.sweeper.get("params") or {})
        choices = config.hydra.runtime.choices
        name = choices.get("hparams_search") or choices.get("experiment") or "sweep"
        command = "python " + shlex.join(sys.argv)
        tags = {
            "sweep.command": command,
            "sweep.overrides": " ".join(overrides) or "(defaults)",
            "sweep.axes": " ".join(axes),
            "sweep.dir": str(Path(config.hydra.sweep.dir).resolve()),
            "sweep.sweeper": str(choices.get("hydra/sweeper")),
            "sweep.launcher": str(choices.get("hydra/launcher")),
            "mlflow.note.content": f"`{command}`",  # the run's description in the MLflow UI
        }
        from rnnlab.tracking.run_info import git_commit

        commit = git_commit(Path(config.paths.root_dir))
        if commit:
            tags["git_commit"] = commit
        run_name = _shorten(f"{name}: {' '.join(axes)}" if axes else name, 250)
        run = client.create_run(experiment_id, run_name=run_name, tags=tags)
        self.parent = Parent(run.info.run_id, experiment_id, config.experiment_name, tracking_uri, fixed,
                             tags["sweep.dir"])
        atexit.register(self._end, sweep_failed=True)  # the sweep ended by an exception or a signal
        self._catch_interrupts()
        os.environ[PARENT_ENV] = run.info.run_id
        log.info(f"sweep: MLflow parent run {run.info.run_id} in experiment {config.experiment_name!r}")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._end(sweep_failed=False)

    def _catch_interrupts(self) -> None:
        """Remember a Ctrl-C or SIGTERM (the parent ends KILLED), then let it act as before."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if previous in (signal.SIG_IGN, None):
                continue

            def handler(signum: int, frame: Any, previous: Any = previous) -> None:
                self.interrupted = True
                if callable(previous):
                    previous(signum, frame)
                else:  # SIG_DFL: end the process, but through Python so that atexit runs
                    raise SystemExit(128 + signum)

            try:
                signal.signal(signum, handler)
            except ValueError:  # not the main thread: no handler, the atexit end still runs
                return

    def _end(self, sweep_failed: bool) -> None:
        if self.parent is None or self.ended:
            return
        self.ended = True
        import mlflow

        client = mlflow.MlflowClient(self.parent.tracking_uri)
        stray = [child for child in self.children(client) if child.info.status == "RUNNING"]
        for child in stray:  # its process died before it could end the run
            client.set_terminated(child.info.run_id, "KILLED" if self.interrupted else "FAILED")
        children = self.children(client)
        if self.interrupted:
            status = "KILLED"
        elif sweep_failed or any(child.info.status == "FAILED" for child in children):
            status = "FAILED"
        else:
            status = "FINISHED"
        markdown = summary_markdown(children, self.summary_metrics)
        try:
            for suffix, text in ((".md", markdown), (".csv", summary_csv(children))):
                path = Path(self.parent.sweep_dir) / (SUMMARY + suffix)
                if path.parent.is_dir():
                    path.write_text(text)
                client.log_text(self.parent.run_id, text, SUMMARY + suffix)
        finally:  # whatever happened to the summary, the parent does not stay RUNNING
            client.set_terminated(self.parent.run_id, status)
        parent, uri = self.parent, self.parent.tracking_uri
        print(f"\nsweep {status}: MLflow parent run {parent.run_id} (experiment {parent.experiment!r}), "
              f"{len(children)} jobs\n"
              f"browse experiment:  {ui.experiment_link(uri, parent.experiment_id)}\n"
              f"browse parent run:  {ui.run_link(uri, parent.experiment_id, parent.run_id)}\n{markdown}", flush=True)

    def children(self, client: Any) -> list[Any]:
        return sorted(mlflow_store.search_all_runs(client, [self.parent.experiment_id],
                                                 f"tags.`mlflow.parentRunId` = '{self.parent.run_id}'"),
                      key=lambda run: int(run.data.tags.get("sweep.job", -1)))

    # --- in the job's process ------------------------------------------------------------------

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ.pop(CHILD_ENV, None)  # a single run never joins a sweep, whatever its environment
        if self.parent is None or config.hydra.mode != RunMode.MULTIRUN:
            return
        overrides = list(config.hydra.overrides.task)
        varying = [o for o, c in zip(overrides, _canonical(overrides)) if c not in self.parent.fixed_overrides]
        tags = {"mlflow.parentRunId": self.parent.run_id, "sweep.job": str(config.hydra.job.num),
                "sweep.overrides": " ".join(varying),
                # also on a job that fails before training logs its tags, so reports group it with its configuration
                "hydra_overrides": " ".join(overrides) or "(defaults)"}
        os.environ[CHILD_ENV] = json.dumps({"experiment": self.parent.experiment, "tags": tags})
        threads = os.environ.get("OMP_NUM_THREADS")
        if threads:  # parallel jobs share the cores: joblib sets it to cores // n_jobs, conf/hydra/launcher/
            import torch  # slurm.yaml to cpus_per_task; torch read it at import, maybe before it was set

            torch.set_num_threads(int(threads))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        child = os.environ.pop(CHILD_ENV, None)
        if child is None or self.parent is None or not _global_rank_zero():
            return
        tags = json.loads(child)["tags"]
        import mlflow

        client = mlflow.MlflowClient(self.parent.tracking_uri)
        job = tags["sweep.job"]
        runs = mlflow_store.search_all_runs(client, [self.parent.experiment_id],
                                            f"tags.`mlflow.parentRunId` = '{self.parent.run_id}' "
                                            f"and tags.`sweep.job` = '{job}'")
        if job_return.status == JobStatus.COMPLETED:
            for run in runs:
                if run.info.status == "RUNNING":
                    client.set_terminated(run.info.run_id, "FINISHED")
            return
        error = job_return._return_value  # the job's exception (`return_value` would raise it)
        message = str(error) if isinstance(error, JobFailed) else f"{type(error).__name__}: {error}"
        log.error(f"sweep job {job} ({tags['sweep.overrides']}) failed: {message}",
                  exc_info=None if isinstance(error, JobFailed) else error)
        if not runs:  # it failed before training created its run: the sweep still shows the job
            runs = [client.create_run(self.parent.experiment_id, run_name=_run_name(config), tags=tags)]
        for run in runs:
            client.set_tag(run.info.run_id, "sweep.error", message[:5000])
            client.set_terminated(run.info.run_id, "FAILED")


def sweep_axes(overrides: Sequence[str], params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """What a sweep varies, and the overrides that every job shares (in the form its jobs get them).

    The axes are the sweeper's `params` (a preset's grid or search space) less the keys that the command
    line sets, then the command line's sweeps (`model=rnn,lstm`, `lr=interval(...)`).
    """
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    given = {override.get_key_element() for override in parsed}
    axes = [f"{key}={_compact(value)}" for key, value in params.items() if key not in given]
    axes += [text for text, override in zip(overrides, parsed) if override.is_sweep_override()]
    fixed = [text for text, override in zip(overrides, parsed) if not override.is_sweep_override()]
    return axes, _canonical(fixed)


def summary_markdown(children: Sequence[Any], metrics: Sequence[str]) -> str:
    """One row per job: its overrides, status and final metrics (those of `metrics` any job has)."""
    if not metrics:  # each job's task's own (tasks/base.py summary_metrics), in the jobs' order
        metrics = list(dict.fromkeys(m for child in children for m in task_metrics(child, "summary_metrics")))
    shown = [m for m in metrics if any(m in child.data.metrics for child in children)]
    rows = [["job", "run", "overrides", "status", *shown], ["---"] * (4 + len(shown))]
    for child in children:
        tags = child.data.tags
        rows.append([tags.get("sweep.job", ""), child.info.run_name, tags.get("sweep.overrides", ""),
                     child.info.status, *(_number(child.data.metrics.get(m)) for m in shown)])
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    failures = [f"- job {child.data.tags.get('sweep.job')}: {_first_line(child.data.tags['sweep.error'])}"
                for child in children if "sweep.error" in child.data.tags]
    return "\n".join(lines + (["", "failed (the CSV has each whole message):", *failures] if failures else [])) + "\n"


def summary_csv(children: Sequence[Any]) -> str:
    """Every final metric of every job, at full precision."""
    metrics = sorted({key for child in children for key in child.data.metrics})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["job", "run_id", "run_name", "overrides", "status", "error", *metrics])
    for child in children:
        tags = child.data.tags
        writer.writerow([tags.get("sweep.job", ""), child.info.run_id, child.info.run_name,
                         tags.get("sweep.overrides", ""), child.info.status, tags.get("sweep.error", ""),
                         *(repr(child.data.metrics[m]) if m in child.data.metrics else "" for m in metrics)])
    return out.getvalue()


def _first_line(text: str) -> str:
    return _shorten(text.splitlines()[0] if text else "", 200)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 2] + " …"


def _compact(value: Any) -> str:
    """A sweeper's search space as one line: `rnn,lstm` as written, a structured one as JSON."""
    if OmegaConf.is_config(value):
        return json.dumps(OmegaConf.to_container(value, resolve=True), separators=(",", ":"))
    return str(value)


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.0f}"


def _canonical(overrides: list[str]) -> list[str]:
    """Overrides as a sweeper writes them into its jobs' (`+a.b=false` becomes `+a.b=False`)."""
    return [f"{override.get_key_element()}={override.get_value_element_as_str()}"
            for override in OverridesParser.create().parse_overrides(overrides)]


def _experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    """The experiment's id, created as MLFlowLogger would (another sweep may create it at the same time)."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:
            experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id


def _run_name(config: DictConfig) -> str:
    return str(OmegaConf.select(config, "run_name", default="job"))


def _global_rank_zero() -> bool:
    """Only one process of a multi-process job (DDP over SLURM tasks) speaks for it."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
