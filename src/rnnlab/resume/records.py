"""What a run leaves for resume= to find it by: run.json in its directory (its MLflow run and store, whether it
finished, the settings it trains with, and while it runs its host and process), the MLflow tag `rnnlab.run_dir` with
its directory, and checkpoints/last.ckpt."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

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


def trained_config(cfg: DictConfig) -> dict[str, Any]:
    """The FROZEN part of the config, unresolved (paths may move, the settings may not), flattened."""
    from rnnlab.tracking.run_info import flatten

    part = {key: OmegaConf.to_container(cfg[key], resolve=False) if OmegaConf.is_config(cfg[key]) else cfg[key]
            for key in FROZEN if key in cfg}
    return flatten(part)
