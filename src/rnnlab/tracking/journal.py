"""What a run could not send to its MLflow tracking server, kept beside the run to replay later.

A journal is a folder `<run dir>/mlflow_journal/<run id>/`:

- `journal.jsonl`: one JSON record per line. The first names the run; the others are its writes in
  the order they were made, each as the MlflowClient call that replays it:
      {"run_id": "...", "tracking_uri": "http://..."}
      {"op": "log_batch", "metrics": [[key, value, timestamp_ms, step], ...], "params": {...}, "tags": {...}}
      {"op": "log_artifact" | "log_artifacts", "local_path": "files/000007/samples", "artifact_path": ...}
      {"op": "set_terminated", "status": "FINISHED", "end_time": ms}
- `files/`: a copy of each file logged while the server was away, taken at the time of the call:
  temporary files are gone and checkpoints overwritten by the time of a replay.
- `synced.json`: how many records have been replayed, so that replaying again sends nothing twice.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

JOURNAL = "journal.jsonl"
SYNCED = "synced.json"
METRICS_PER_REQUEST = 1000  # MLflow's limit per log_batch


class Journal:
    """Appends a run's writes (thread-safe: MLflow's async logging reports failures from its own threads)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / JOURNAL
        self._lock = threading.Lock()

    @classmethod
    def create(cls, folder: Path, run_id: str, tracking_uri: str) -> Journal:
        journal = cls(folder)
        if not journal.path.exists():
            journal.folder.mkdir(parents=True, exist_ok=True)
            journal._append({"run_id": run_id, "tracking_uri": tracking_uri})
        return journal

    def log_batch(self, metrics: Iterable = (), params: Iterable = (), tags: Iterable = ()) -> None:
        """MLflow's Metric, Param and RunTag entities, as MlflowClient.log_batch takes them."""
        self._append({"op": "log_batch",
                      "metrics": [[m.key, float(m.value), int(m.timestamp), int(m.step)] for m in metrics],
                      "params": {p.key: str(p.value) for p in params},
                      "tags": {t.key: str(t.value) for t in tags}})

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        """A file, or a folder as a folder (MlflowClient.log_artifact)."""
        self._keep("log_artifact", Path(local_path), artifact_path)

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """A folder's contents (MlflowClient.log_artifacts)."""
        self._keep("log_artifacts", Path(local_dir), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        folder = Path(artifact_file).parent
        with self._lock:
            copy = self._new_copy(Path(artifact_file).name)
            (self.folder / copy).write_text(text)
            self._write({"op": "log_artifact", "local_path": str(copy),
                         "artifact_path": None if folder == Path(".") else str(folder)})

    def set_terminated(self, status: str, end_time: int | None = None) -> None:
        self._append({"op": "set_terminated", "status": status, "end_time": end_time or int(time.time() * 1000)})

    def read(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The run (tracking_uri, run_id) and every record after it."""
        with self._lock:
            lines = self.path.read_text().splitlines()
        run, *records = (json.loads(line) for line in lines if line)
        return run, records

    def synced(self) -> int:
        path = self.folder / SYNCED
        return json.loads(path.read_text())["records"] if path.exists() else 0

    def pending(self) -> int:
        return len(self.read()[1]) - self.synced()

    def _append(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as file:
            file.write(json.dumps(record) + "\n")

    def _keep(self, op: str, source: Path, artifact_path: str | None) -> None:
        with self._lock:
            copy = self._new_copy(source.name)
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, self.folder / copy)
            self._write({"op": op, "local_path": str(copy), "artifact_path": artifact_path})

    def _new_copy(self, name: str) -> Path:
        """files/<this record's line number>/name: unique, since every record has its own line."""
        with open(self.path) as lines:
            copy = Path("files") / f"{sum(1 for _ in lines):06d}" / name
        (self.folder / copy).parent.mkdir(parents=True, exist_ok=True)
        return copy


def replay(journal: Journal, client) -> dict[str, Any]:
    """Send the records not yet synced into the journal's run with `client` (an MlflowClient), in order.

    Metrics keep their steps and timestamps; runs of log_batch records go in requests of up to 1000
    metrics. `synced.json` advances after each request, so a replay cut short resumes where it stopped
    (and MLflow ignores a metric it already has). Returns what was sent, by kind."""
    from mlflow.entities import Metric, Param, RunTag

    run, records = journal.read()
    done = journal.synced()
    sent = {"metrics": 0, "params": 0, "tags": 0, "artifacts": 0, "records": 0}
    for group in _requests(records[done:]):
        first = group[0]
        if first["op"] == "log_batch":
            metrics = [Metric(*metric) for r in group for metric in r["metrics"]]  # key, value, timestamp, step
            params = {key: value for r in group for key, value in r["params"].items()}
            tags = {key: value for r in group for key, value in r["tags"].items()}  # later values win, as set_tag
            client.log_batch(run["run_id"], metrics=metrics, params=[Param(k, v) for k, v in params.items()],
                             tags=[RunTag(k, v) for k, v in tags.items()], synchronous=True)
            sent["metrics"] += len(metrics)
            sent["params"] += len(params)
            sent["tags"] += len(tags)
        elif first["op"] in ("log_artifact", "log_artifacts"):
            getattr(client, first["op"])(run["run_id"], str(journal.folder / first["local_path"]),
                                         first["artifact_path"])
            sent["artifacts"] += 1
        elif first["op"] == "set_terminated":
            client.set_terminated(run["run_id"], first["status"], first["end_time"])
            sent["status"] = first["status"]
        else:
            raise ValueError(f"{journal.path}: unknown record {first}")
        done += len(group)
        sent["records"] += len(group)
        (journal.folder / SYNCED).write_text(json.dumps({"records": done, "synced_at": time.time()}) + "\n")
    return sent


def _requests(records: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Consecutive log_batch records merged up to METRICS_PER_REQUEST metrics; anything else alone."""
    group: list[dict[str, Any]] = []
    metrics = 0
    for record in records:
        batch = record["op"] == "log_batch"
        full = batch and metrics + len(record["metrics"]) > METRICS_PER_REQUEST
        if group and (not batch or group[0]["op"] != "log_batch" or full):
            yield group
            group, metrics = [], 0
        group.append(record)
        metrics += len(record["metrics"]) if batch else 0
    if group:
        yield group
