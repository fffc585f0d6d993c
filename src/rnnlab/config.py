"""Config helpers shared by entry scripts and tests: resolvers and checks Hydra cannot express."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf

from rnnlab import schedulers
from rnnlab.errors import ConfigError, check_options

log = logging.getLogger(__name__)


def project_root() -> Path:
    """The repository (where conf/ and logs/ live) for an editable install, else the working dir."""
    candidate = Path(__file__).resolve().parents[2]
    return candidate if (candidate / "conf").is_dir() else Path.cwd()


def local_artifacts(tracking_uri: str, path: str) -> str | None:
    """conf/logger/mlflow.yaml's artifact_location: `path` beside a local store; for a tracking server
    (http://...) None, its own default, which every client can reach, unlike a path on this machine."""
    from rnnlab.tracking.remote import is_remote

    return None if is_remote(tracking_uri) else path


if not OmegaConf.has_resolver("project_root"):
    OmegaConf.register_new_resolver("project_root", lambda: str(project_root()))
if not OmegaConf.has_resolver("local_artifacts"):
    OmegaConf.register_new_resolver("local_artifacts", local_artifacts)


def check(cfg: DictConfig) -> None:
    """Raise ConfigError for values that only fail late, or with an unhelpful message, downstream."""
    lr = cfg.optimizer.get("lr")
    if lr is None or not isinstance(lr, (int, float)) or lr <= 0:
        raise ConfigError(f"optimizer.lr={lr} is invalid: must be a positive number")
    # build it once on a dummy parameter: unknown keys and invalid values fail now, not mid-fit
    optimizer_class = get_class(cfg.optimizer._target_)
    check_options(optimizer_class, [k for k in cfg.optimizer if k != "_target_"], "optimizer", ignore=("params",))
    try:
        instantiate(cfg.optimizer, params=[torch.nn.Parameter(torch.zeros(1))])
    except Exception as error:  # torch's message, e.g. "Invalid beta parameter at index 0: 1.5"
        raise ConfigError(f"optimizer={optimizer_class.__name__} rejects its settings: "
                          f"{error.__cause__ or error}") from None
    trainer = cfg.trainer  # accelerator, precision and the rest of `hardware=`: rnnlab.hardware.check
    for key in ("max_epochs", "max_steps"):
        value = trainer.get(key)
        if value is not None and value != -1 and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"trainer.{key}={value} is invalid: must be a positive integer (or -1)")
    clip = trainer.get("gradient_clip_val")
    if clip is not None and (not isinstance(clip, (int, float)) or clip < 0):
        raise ConfigError(f"trainer.gradient_clip_val={clip} is invalid: must be ≥ 0 (0 or null disables)")
    algorithm = trainer.get("gradient_clip_algorithm")
    if algorithm is not None and algorithm not in ("norm", "value"):
        raise ConfigError(f"trainer.gradient_clip_algorithm={algorithm} is invalid: norm (rescale the global "
                          "gradient norm to at most gradient_clip_val) or value (clamp each entry)")
    for key in ("max_time", "max_cpu_time"):
        _check_budget(key, trainer.get(key))
    _check_time_schedule(cfg)


def _check_budget(key: str, value: Any) -> None:
    if value is None:
        return
    try:
        seconds = Timer(duration=value).time_remaining()  # Lightning's reading of max_time
    except (MisconfigurationException, TypeError, AttributeError):  # not DD:HH:MM:SS
        seconds = None
    if not seconds or seconds <= 0:
        raise ConfigError(f"trainer.{key}={value} is invalid: a positive duration DD:HH:MM:SS, e.g. "
                          f"trainer.{key}=00:00:30:00 (or null: no limit)")


def _check_time_schedule(cfg: DictConfig) -> None:
    """A schedule over the time budget (scheduler=cosine_time, step_time): its clock's budget is set, and the schedule
    builds (rnnlab/schedulers.py says what is wrong with its settings)."""
    schedule = OmegaConf.select(cfg, "scheduler.scheduler")
    if not schedule or "clock" not in schedule:
        return
    clock = schedule.clock
    if clock not in schedulers.BUDGETS:
        raise ConfigError(f"scheduler.scheduler.clock={clock} is invalid: wall (the budget trainer.max_time) or cpu "
                          f"(this process's CPU time, the budget trainer.max_cpu_time)")
    budget = schedulers.BUDGETS[clock][0]
    if OmegaConf.select(cfg, budget) is None:
        raise ConfigError(schedulers.no_budget(clock))
    limits = [f"trainer.{key}={value}" for key in ("max_epochs", "max_steps")
              if (value := cfg.trainer.get(key)) not in (None, -1)]
    if limits:
        log.warning("%s may end the run before %s does, leaving the schedule over it unfinished: set it to -1 to "
                    "let the budget end the run", " and ".join(limits), budget)
    settings = {key: value for key, value in schedule.items() if key != "clock"}
    try:
        instantiate(settings, optimizer=torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0),
                    spent=lambda: 0.0)
    except InstantiationException as error:
        if isinstance(error.__cause__, ConfigError):
            raise error.__cause__ from None
        raise


def check_writable(directory: Path, key: str) -> None:
    """ConfigError unless files can be created in `directory` (created if missing): fail before training, not at
    its first checkpoint."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise ConfigError(f"{key}={directory} is not writable: {error.strerror or error}; choose a directory you "
                          f"can write to, or fix its permissions") from None
