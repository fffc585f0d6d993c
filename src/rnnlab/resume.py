"""`python train.py resume=<run dir | MLflow run id | last>`: continue a run where it stopped, in its own
directory and its own MLflow run.

What `resume=` names
- a run directory (`logs/runs/<date>/<time>`, or a sweep job's `logs/multiruns/<date>/<time>/<n>`): the run
  continues from its `checkpoints/last.ckpt`;
- an MLflow run id, as train.py printed it: the run directory recorded in the run's tag `rnnlab.run_dir`;
- `last`: among the run directories under `paths.log_dir` (`runs/` and `multiruns/`) that have a
  `checkpoints/last.ckpt` and a `run.json` saying the run neither finished nor still runs, the one whose
  last.ckpt was written most recently: the run that was interrupted last.

Every run writes `run.json` into its directory (its MLflow run id and tracking URI, whether it finished, the
settings of the groups below that it trains with, and while it runs its host and process id); that and the
`rnnlab.run_dir` tag are how the three forms find each other. A run whose process is still alive on this
machine is never resumed.

Config. train.py replays the overrides the run was started with (its `.hydra/overrides.yaml`) into its own
directory (`hydra.run.dir`), followed by the overrides given now, which may change how the run goes on
(`trainer.max_epochs`, `trainer.gradient_clip_val`, `callbacks.*`, `logger.*`, `test`, ...) but not what
is trained: overrides of model, data, task, attention, optimizer, scheduler, seed, debug or experiment
are refused, since the checkpoint's weights, optimizer state and data position belong to them. Config files
may have changed since the run started, so the checkpoint's model is compared with the one built now, and
those groups' settings with the ones run.json recorded then; the first difference is refused.

What continues. Lightning restores weights, optimizer, scheduler, loop counters and callback states;
rnnlab adds the random generators (callbacks/random_state.py), the position in the epoch
(data/resumable.py), what the task sums over the epoch, task=lm's carried hidden state included
(tasks/train_epoch.py), and the ReduceLROnPlateau step Lightning skips after an epoch-end checkpoint
(callbacks/last_checkpoint.py). On CPU with trainer.deterministic=true the resumed run ends with the same metrics
as one never interrupted (tests/test_resume.py).

MLflow. The run continues under its id. The steps the interrupted process logged after its last checkpoint
are not logged again, those MLflow did not get are (each metric's history stays one series, one value per
step; each checkpoint waits for the metrics logged before it, tracking/queued_writes.py); params are not logged
again (MLflow params cannot change; the tag `hydra_overrides` shows the command line of the latest resume),
and the tag `resumed_from_step` says where the last resume started.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from rnnlab.checkpoints import RUN_ID
from rnnlab.config import check_writable, project_root
from rnnlab.errors import ConfigError

if TYPE_CHECKING:  # train.py imports this module before Hydra starts: keep Lightning out of that path
    import lightning.pytorch as L

log = logging.getLogger(__name__)

RUN_RECORD = "run.json"
CHECKPOINT = Path("checkpoints") / "last.ckpt"
RUN_DIR_TAG = "rnnlab.run_dir"
# override keys (and config groups) that decide what is trained: a resumed run cannot change them
FROZEN = ("model", "data", "task", "attention", "optimizer", "scheduler", "seed", "debug", "experiment",
          "hparams_search")


@dataclass
class Resume:
    run_dir: Path
    checkpoint: Path
    run_id: str | None  # the MLflow run to continue; None if the run was not tracked
    step: int


# --- before Hydra: which run, with which overrides ------------------------------------------------------------
def hydra_argv(argv: list[str]) -> list[str]:
    """train.py's command line, with `resume=X` turned into the run's own overrides, the new ones and its
    directory; unchanged without resume=. Either way the directory the run writes to must be writable (Hydra
    would create it with a stack trace)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    arguments = argv[1:]
    overrides = [a for a in arguments if not a.startswith("-") and ("=" in a or a.startswith("~"))]
    parsed = parser.parse_overrides(overrides)
    wanted = [o for o in parsed if o.key_or_group == "resume"]
    if not wanted:
        _check_output_writable(parsed)
        return argv
    if any(a in ("-m", "--multirun") for a in arguments):
        raise ConfigError("resume= continues one run; it cannot be combined with -m (a sweep)")
    target = wanted[-1].value()
    target = target if isinstance(target, str) else wanted[-1].input_line.split("=", 1)[1]
    run_dir = locate(target, _log_dir(parsed), _tracking_uri(parsed))
    recorded = [o for o in parser.parse_overrides(_recorded_overrides(run_dir)) if o.key_or_group != "resume"]
    as_recorded = {o.input_line for o in recorded}
    # what the run was started with may be given again (DDP workers rerun train.py with this very command line)
    given = [o for o in parsed if o.key_or_group != "resume" and o.input_line not in as_recorded
             and not (o.key_or_group == "hydra.run.dir" and Path(str(o.value())).resolve() == run_dir)]
    for override in given:
        key = override.key_or_group
        if key == "hydra.run.dir":
            raise ConfigError(f"resume= writes into the run's own directory ({run_dir}); drop {override.input_line}")
        if any(key == group or key.startswith(f"{group}.") for group in FROZEN):
            raise ConfigError(f"resume= continues the run as it was trained, so {override.input_line} cannot change "
                              f"it ({key.split('.')[0]} is fixed by the checkpoint); start a new run instead")
    original = [o for o in recorded if o.key_or_group not in {g.key_or_group for g in given}]
    others = [a for a in arguments if a not in overrides]
    return [argv[0], *others, *(o.input_line for o in original), *(o.input_line for o in given),
            f"resume={_quote(run_dir)}", f"hydra.run.dir={_quote(run_dir)}"]


def _check_output_writable(overrides) -> None:
    run_dir = {o.key_or_group: o.value() for o in overrides}.get("hydra.run.dir")
    key, directory = ("hydra.run.dir", run_dir) if isinstance(run_dir, str) else ("paths.log_dir", _log_dir(overrides))
    if "${" not in str(directory):  # an interpolation is Hydra's to resolve
        check_writable(Path(directory).expanduser(), key)


def locate(target: str, log_dir: Path, tracking_uri: str | None) -> Path:
    """The run directory `resume=target` names (see the module docstring)."""
    if target == "last":
        return _last_interrupted(log_dir)
    path = Path(target).expanduser()
    if path.is_dir():
        if not (path / CHECKPOINT).is_file():
            raise ConfigError(f"resume={target}: there is no {CHECKPOINT} in that directory (the run stopped before "
                              f"its first checkpoint, or ran without the checkpoint callbacks); start it again")
        record = read_record(path)
        if still_running(record):
            raise ConfigError(f"resume={target}: that run is still running (process {record['pid']} on this "
                              f"machine); wait for it to end, or stop it first")
        return path.resolve()
    if RUN_ID.fullmatch(target):
        return _run_dir_of(target, tracking_uri)
    raise ConfigError(f"resume={target}: no such directory, and not an MLflow run id (32 hex digits); give a run "
                      f"directory (logs/runs/<date>/<time>), the run id train.py printed, or last")


def _last_interrupted(log_dir: Path) -> Path:
    candidates = [*log_dir.glob(f"runs/*/*/{CHECKPOINT}"), *log_dir.glob(f"multiruns/*/*/*/{CHECKPOINT}")]
    records = {c: read_record(c.parent.parent) for c in candidates}
    unfinished = [c for c, r in records.items() if r and not r.get("finished") and not still_running(r)]
    if not unfinished:
        raise ConfigError(f"resume=last: no run under {log_dir} has a {CHECKPOINT}, a {RUN_RECORD} and neither "
                          f"finished nor still runs; give its directory or MLflow run id")
    return max(unfinished, key=lambda c: c.stat().st_mtime).parent.parent.resolve()


def _run_dir_of(run_id: str, tracking_uri: str | None) -> Path:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        run = mlflow.MlflowClient(tracking_uri).get_run(run_id)
    except MlflowException:
        raise ConfigError(f"resume={run_id}: no such run in the MLflow store {tracking_uri}; check the id, or set "
                          f"MLFLOW_TRACKING_URI to the store it was logged to") from None
    recorded = run.data.tags.get(RUN_DIR_TAG)
    if not recorded:
        raise ConfigError(f"resume={run_id}: the MLflow run does not record its run directory (tag {RUN_DIR_TAG}); "
                          f"give the directory instead")
    return locate(recorded, Path(), tracking_uri)


def _recorded_overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    try:
        return [str(o) for o in OmegaConf.to_container(OmegaConf.load(path), resolve=False)]  # verbatim
    except Exception as error:  # missing, unreadable or not YAML
        raise ConfigError(f"resume={run_dir}: cannot read the run's overrides {path} ({error}); was it started "
                          f"by train.py?") from None


def _log_dir(overrides) -> Path:
    given = {o.key_or_group: o.value() for o in overrides}
    if "paths.log_dir" in given:
        return Path(str(given["paths.log_dir"])).expanduser()
    return Path(str(given.get("paths.root_dir", project_root()))) / "logs"


def _tracking_uri(overrides) -> str:
    given = {o.key_or_group: o.value() for o in overrides}
    return os.environ.get("MLFLOW_TRACKING_URI") or str(given.get("logger.mlflow.tracking_uri") or
                                                        f"sqlite:///{_log_dir(overrides)}/mlflow.db")


def _quote(path: Path) -> str:
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


# --- in train(): the checkpoint, checked against the model built now ---------------------------------------------
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
    _check_same_model(checkpoint, task, run_dir)
    record = read_record(run_dir)
    _check_same_training(record.get("trained"), trained_config(cfg), run_dir)
    run_id = record.get("mlflow_run_id")
    if run_id and tracking_uri:
        _check_run_exists(run_id, tracking_uri, record.get("tracking_uri"))
    output_dir = Path(cfg.paths.output_dir).resolve()
    if output_dir != run_dir:
        log.warning("resuming %s, but writing this run's outputs into %s", run_dir, output_dir)
    step = int(checkpoint.get("global_step", 0))
    log.info("resuming %s from %s (epoch %s, step %d)", run_dir, checkpoint_path, checkpoint.get("epoch"), step)
    return Resume(run_dir, checkpoint_path, run_id, step)


def _check_same_model(checkpoint: dict[str, Any], task: L.LightningModule, run_dir: Path) -> None:
    saved = checkpoint.get("hyper_parameters") or {}
    built = dict(task.hparams)
    for key in ("model", *(k for k in built if k.endswith("vocab_size"))):
        old, new = saved.get(key), built.get(key)
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


def trained_config(cfg: DictConfig) -> dict[str, Any]:
    """The FROZEN part of the config, unresolved (paths may move, the settings may not), flattened."""
    from rnnlab.tracking.run_info import flatten

    part = {key: OmegaConf.to_container(cfg[key], resolve=False) if OmegaConf.is_config(cfg[key]) else cfg[key]
            for key in FROZEN if key in cfg}
    return flatten(part)


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


# --- run.json --------------------------------------------------------------------------------------------------
def record(run_dir: Path, cfg: DictConfig | None, mlflow_logger, tracking_uri: str | None,
           finished: bool = False) -> None:
    """Write run_dir/run.json (and tag the MLflow run with run_dir) so that resume= can find the run and check
    that it goes on with what it was trained with."""
    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = mlflow_logger.run_id if mlflow_logger is not None else None
    if run_id is not None and not finished:
        mlflow_logger.experiment.set_tag(run_id, RUN_DIR_TAG, str(run_dir.resolve()))
    entry = {"finished": finished, "mlflow_run_id": run_id, "tracking_uri": tracking_uri if run_id else None}
    if not finished:  # which process writes into run_dir: resume= must not start a second one
        entry |= {"host": socket.gethostname(), "pid": os.getpid()}
    if cfg is not None:
        entry["trained"] = trained_config(cfg)
    (run_dir / RUN_RECORD).write_text(json.dumps(entry, indent=2) + "\n")


def still_running(record: dict[str, Any]) -> bool:
    """Whether the process that wrote `record` is alive here (not us, nor the DDP launcher that started us)."""
    pid = record.get("pid")
    if record.get("finished") or not pid or record.get("host") != socket.gethostname() \
            or pid in (os.getpid(), os.getppid()):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def read_record(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return {}
