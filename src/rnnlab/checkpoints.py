"""Finding and reading the checkpoints train.py writes, for the scripts that use them (translate.py, eval.py, ...).

`ckpt=` (and `model.init_from=`, which reads a language model's) is a .ckpt file, a run directory (`logs/runs/<date>/
<time>`: the one checkpoint the model_checkpoint callback kept in its checkpoints/, the best), or the MLflow run id
train.py printed. With `logger.mlflow.log_model=true` (the default) Lightning's MLFlowLogger logs every checkpoint
the model_checkpoint callback kept as `<name>/<name>.ckpt`, beside `<name>/aliases.txt` holding e.g.
"['latest', 'best']"; a run id stands for the one marked best.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import torch

from rnnlab.errors import ConfigError

RUN_ID = re.compile(r"[0-9a-f]{32}")


def is_run_id(ckpt: str) -> bool:
    """An MLflow run id (32 hex digits) and not a file of that name."""
    return bool(RUN_ID.fullmatch(str(ckpt))) and not Path(str(ckpt)).is_file()


def resolve_checkpoint(ckpt: str | None, tracking_uri: str | None, download_dir: str | Path,
                       key: str = "ckpt") -> Path:
    """The local .ckpt file `ckpt` names: itself, a run directory's best checkpoint, or the MLflow run's best
    checkpoint downloaded into download_dir. `key` is the option that named it, for the messages."""
    require_ckpt(ckpt, key)
    path = Path(str(ckpt)).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        return _best_in_run_dir(path, f"{key}={ckpt}")
    if not RUN_ID.fullmatch(str(ckpt)):
        raise ConfigError(f"{key}={ckpt}: no such file, and not an MLflow run id (32 hex digits); give the path of "
                          f"a .ckpt file or of a run directory, or the run id that train.py printed")
    return _download_best_checkpoint(str(ckpt), tracking_uri, Path(download_dir), key)


def require_ckpt(ckpt: str | None, key: str = "ckpt") -> None:
    """A one-line ConfigError unless ckpt= (or `key`) is given."""
    if ckpt is None or not str(ckpt).strip():
        raise ConfigError(f"{key} is missing: give {key}=<path of a .ckpt file> or {key}=<the MLflow run id that "
                          f"train.py printed>")


def read_checkpoint(path: Path, ckpt: str, device: str | torch.device = "cpu", key: str = "ckpt") -> dict[str, Any]:
    """The checkpoint's dict (hyper_parameters, state_dict, ...) read as plain data (weights_only=True), or a
    ConfigError naming the file and what is wrong with it."""
    from rnnlab import checkpoint_io  # Lightning's, which train.py's start need not import

    return checkpoint_io.load(path, f"{key}={ckpt}", device)


def _best_in_run_dir(run_dir: Path, given: str) -> Path:
    """The checkpoint the model_checkpoint callback kept in a run directory (save_top_k=1: the best); last.ckpt,
    the crash-recovery one, is not it."""
    folder = run_dir / "checkpoints" if (run_dir / "checkpoints").is_dir() else run_dir
    kept = sorted(path for path in folder.glob("*.ckpt") if path.name != "last.ckpt")
    if len(kept) == 1:
        return kept[0]
    if not kept:
        raise ConfigError(f"{given}: {folder} holds no best checkpoint (the model_checkpoint callback's "
                          f"epoch*-step*.ckpt); give the path of a .ckpt file")
    raise ConfigError(f"{given}: {folder} holds {len(kept)} checkpoints ({', '.join(p.name for p in kept)}); give "
                      f"the path of one of them")


def _download_best_checkpoint(run_id: str, tracking_uri: str | None, download_dir: Path, key: str = "ckpt") -> Path:
    """The run's best checkpoint (MLFlowLogger's log_model aliases it "best"), else its only one."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from rnnlab.tracking import mlflow_store

    tracking_uri = tracking_uri or mlflow.get_tracking_uri()
    mlflow_store.require_store(tracking_uri, f"{key}={run_id}")
    client = mlflow.MlflowClient(tracking_uri)
    try:
        client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"{key}={run_id}: no such run in the MLflow store {tracking_uri}; check the id, or set "
                          f"tracking_uri (or MLFLOW_TRACKING_URI) to the store it was logged to") from None
    found: list[tuple[bool, str]] = []  # (marked best, artifact path of the .ckpt)
    for folder in client.list_artifacts(run_id):
        if not folder.is_dir:
            continue
        files = {Path(item.path).name: item.path for item in client.list_artifacts(run_id, folder.path)}
        for name, artifact in files.items():
            if name.endswith(".ckpt"):
                aliases = []
                if "aliases.txt" in files:
                    text = Path(client.download_artifacts(run_id, files["aliases.txt"], str(download_dir))).read_text()
                    aliases = ast.literal_eval(text.strip() or "[]")
                found.append(("best" in aliases, artifact))
    if not found:
        raise ConfigError(f"{key}={run_id}: the MLflow run has no checkpoint artifact (it is logged with "
                          f"logger.mlflow.log_model=true and the model_checkpoint callback); give {key}=<path of a "
                          f".ckpt file> instead")
    best = [artifact for is_best, artifact in found if is_best]
    if not best and len(found) > 1:
        raise ConfigError(f"{key}={run_id}: the run has {len(found)} checkpoints and none is marked best; give "
                          f"{key}=<path of one .ckpt file> ({', '.join(a for _, a in found)})")
    return Path(client.download_artifacts(run_id, (best or [found[0][1]])[0], str(download_dir)))
