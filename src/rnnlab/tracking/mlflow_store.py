"""The project's MLflow tracking store.

MLflow ≥ 3.13 refuses the plain-file store, so runs go to a sqlite database (default
`logs/mlflow.db` under the repository). Several processes creating the *same new* sqlite store at
once race in its schema migration, so `ensure_store` creates and migrates it under a file lock
before any run starts; later processes find it ready.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from rnnlab.errors import ConfigError
from rnnlab.tracking import remote


def default_tracking_uri() -> str:
    """As conf/logger/mlflow.yaml resolves it: MLFLOW_TRACKING_URI, else logs/mlflow.db of the project."""
    from rnnlab.config import project_root

    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'logs' / 'mlflow.db'}"


def sqlite_path(tracking_uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix):]) if tracking_uri.startswith(prefix) else None


def require_store(tracking_uri: str, what: str) -> None:
    """ConfigError if tracking_uri is a sqlite store that does not exist (reading would create an empty one)."""
    db = sqlite_path(tracking_uri)
    if db is not None and not db.is_file():
        raise ConfigError(f"{what}: there is no MLflow store at {db}; point the tracking URI (or "
                          f"MLFLOW_TRACKING_URI) at the store the runs were logged to, or train first")


def search_all_runs(client, experiment_ids: list[str], filter_string: str = "", order_by: list[str] | None = None):
    """Every matching run: MLflow's search_runs returns at most one page (≤ 1000 runs) per call."""
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=1000, page_token=token,
                                  order_by=order_by)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def ensure_store(tracking_uri: str) -> None:
    """Create (and migrate) the store once; safe to call from many processes at the same time.

    A tracking server (http://...) is asked once, briefly, whether it answers: ConfigError if not."""
    import mlflow

    for name in ("alembic", "mlflow.store.db.utils", "mlflow.store.tracking.sqlalchemy_store"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if remote.is_remote(tracking_uri):
        remote.check(tracking_uri)
        return
    db = sqlite_path(tracking_uri)
    if db is None:
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_suffix(db.suffix + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mlflow.MlflowClient(tracking_uri).search_experiments(max_results=1)
