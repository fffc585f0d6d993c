"""The project's MLflow tracking store.

MLflow ≥ 3.13 refuses the plain-file store, so runs go to a sqlite database (default
`logs/mlflow.db` under the repository). Several processes creating the *same new* sqlite store at
once race in its schema migration, so `ensure_store` creates and migrates it under a file lock
before any run starts; later processes find it ready.
"""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path


def sqlite_path(tracking_uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix):]) if tracking_uri.startswith(prefix) else None


def ensure_store(tracking_uri: str) -> None:
    """Create (and migrate) the store once; safe to call from many processes at the same time."""
    import mlflow

    for name in ("alembic", "mlflow.store.db.utils", "mlflow.store.tracking.sqlalchemy_store"):
        logging.getLogger(name).setLevel(logging.WARNING)
    db = sqlite_path(tracking_uri)
    if db is None:
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_suffix(db.suffix + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mlflow.MlflowClient(tracking_uri).search_experiments(max_results=1)
