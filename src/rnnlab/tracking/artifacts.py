"""Files into the run: the one way rnnlab copies a file it wrote (a table, a plot, samples) into every logger that
keeps artifacts (MLflow; the CSV logger keeps none)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def log_files(loggers: Iterable[Any], paths: Iterable[Path | str], folder: str | None = None) -> None:
    """Log each path (a file, or a folder as a folder) under `folder` of each artifact-keeping logger's run."""
    paths = [str(path) for path in paths]
    for logger in loggers:
        if not (hasattr(logger, "run_id") and hasattr(logger.experiment, "log_artifact")):
            continue
        for path in paths:
            logger.experiment.log_artifact(logger.run_id, path, folder)


def write_text(path: Path, text: str) -> Path:
    """Write text (UTF-8) at path, its folders made; the path, to log as an artifact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
