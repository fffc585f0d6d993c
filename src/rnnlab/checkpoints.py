"""Finding and reading the checkpoints train.py writes, for the scripts that use them (translate.py, eval.py, ...).

`ckpt=` is either a .ckpt file or the MLflow run id train.py printed. With `logger.mlflow.log_model=true`
(the default) Lightning's MLFlowLogger logs every checkpoint the model_checkpoint callback kept as
`<name>/<name>.ckpt`, beside `<name>/aliases.txt` holding e.g. "['latest', 'best']"; a run id stands for
the one marked best.
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


def resolve_checkpoint(ckpt: str | None, tracking_uri: str | None, download_dir: str | Path) -> Path:
    """The local .ckpt file `ckpt` names: itself, or the run's best checkpoint downloaded into download_dir."""
    require_ckpt(ckpt)
    path = Path(str(ckpt)).expanduser()
    if path.is_file():
        return path
    if not RUN_ID.fullmatch(str(ckpt)):
        raise ConfigError(f"ckpt={ckpt}: no such file, and not an MLflow run id (32 hex digits); give the path of "
                          f"a .ckpt file or the run id that train.py printed")
    return _download_best_checkpoint(str(ckpt), tracking_uri, Path(download_dir))


def require_ckpt(ckpt: str | None) -> None:
    """A one-line ConfigError unless ckpt= is given."""
    if ckpt is None or not str(ckpt).strip():
        raise ConfigError("ckpt is missing: give ckpt=<path of a .ckpt file> or ckpt=<the MLflow run id that "
                          "train.py printed>")


def read_checkpoint(path: Path, ckpt: str, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint's dict (hyper_parameters, state_dict, ...) read as plain data (weights_only=True), or a
    ConfigError naming the file and what is wrong with it."""
    from rnnlab import checkpoint_io  # Lightning's, which train.py's start need not import

    return checkpoint_io.load(path, f"ckpt={ckpt}", device)


def _download_best_checkpoint(run_id: str, tracking_uri: str | None, download_dir: Path) -> Path:
    """The run's best checkpoint (MLFlowLogger's log_model aliases it "best"), else its only one."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from rnnlab.tracking import mlflow_store

    tracking_uri = tracking_uri or mlflow.get_tracking_uri()
    mlflow_store.require_store(tracking_uri, f"ckpt={run_id}")
    client = mlflow.MlflowClient(tracking_uri)
    try:
        client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"ckpt={run_id}: no such run in the MLflow store {tracking_uri}; check the id, or set "
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
        raise ConfigError(f"ckpt={run_id}: the MLflow run has no checkpoint artifact (it is logged with "
                          f"logger.mlflow.log_model=true and the model_checkpoint callback); give ckpt=<path of a "
                          f".ckpt file> instead")
    best = [artifact for is_best, artifact in found if is_best]
    if not best and len(found) > 1:
        raise ConfigError(f"ckpt={run_id}: the run has {len(found)} checkpoints and none is marked best; give "
                          f"ckpt=<path of one .ckpt file> ({', '.join(a for _, a in found)})")
    return Path(client.download_artifacts(run_id, (best or [found[0][1]])[0], str(download_dir)))
