"""Before Hydra starts: which run `resume=<run dir | MLflow run id | last>` names, and the command line that continues
it (the run's own overrides, the new ones, its own directory). See rnnlab/resume/__init__.py."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from rnnlab.checkpoints import RUN_ID
from rnnlab.config import check_writable, project_root
from rnnlab.errors import ConfigError
from rnnlab.resume.records import CHECKPOINT, FROZEN, RUN_DIR_TAG, RUN_RECORD, read_record, still_running


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
