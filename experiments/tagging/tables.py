"""What experiments/tagging's analysis scripts (words.py, slots.py) share: the store's finished runs, markdown
tables and CSV files."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from rnnlab.errors import ConfigError


def finished_runs(client, experiment: str, uri: str, first: str) -> list:
    """The experiment's FINISHED runs, latest first; no such experiment: one line naming `first`, what to run."""
    from rnnlab.tracking.mlflow_store import search_all_runs

    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ConfigError(f"no experiment {experiment!r} in the MLflow store {uri}: run `{first}` first, or give "
                          f"--experiment/--tracking-uri")
    return search_all_runs(client, [found.experiment_id], "attributes.status = 'FINISHED'",
                           order_by=["attributes.start_time DESC"])


def by_seed(run) -> tuple[int, str]:
    """Sort key: seeds in numeric order (as strings: "2" before "10")."""
    return len(run.seed), run.seed


def percent(part: float, whole: float) -> float:
    return 100 * part / whole if whole else float("nan")


def escape(word: str) -> str:
    return re.sub(r"([\\`*_\[\]<>|#$])", r"\\\1", word)


def cell(value) -> str:
    """A table cell: a float to one decimal (NaN: —), a string escaped (words and tags such as `` or PRP$)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return "—" if value != value else f"{value:.1f}"
    return escape(value) if isinstance(value, str) else str(value)


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]]


def write_csv(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows({key: f"{value:.4f}" if isinstance(value, float) else value for key, value in row.items()}
                         for row in rows)
