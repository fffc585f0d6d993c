"""The MLflow logger of conf/logger/mlflow.yaml: Lightning's MLFlowLogger, except that a tracking server
that stops answering mid-run neither stops training nor loses any of the run's data.

Every write to the run goes through `ResilientClient`: Lightning's metrics and params, the tags,
artifacts and config that training.py, callbacks and tasks log through `logger.experiment`, and the
final status. While the server answers, each is MLflow's own call (metrics on MLflow's background
queue with `synchronous: false`). The first write that fails because the server is unreachable (at
once for a call, later on MLflow's queue for an async batch) switches the run to its journal
(rnnlab/tracking/journal.py) with one warning. From then on writes go to the journal, not to the
server, except that every `reconnect_seconds` one of them first asks whether the server is back, and
if it is, replays the journal into the run and goes on online. What the journal still holds when the
run ends is sent by `python -m rnnlab.tracking.sync` (make sync).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from typing_extensions import override

from rnnlab.tracking import remote
from rnnlab.tracking.journal import Journal, replay

log = logging.getLogger(__name__)

SYNC_COMMAND = "python -m rnnlab.tracking.sync"
_STATUS = {"success": "FINISHED", "finished": "FINISHED", "failed": "FAILED"}  # Lightning's names → MLflow's


class ResilientMLFlowLogger(MLFlowLogger):
    """MLFlowLogger whose writes fall back to `journal_dir/<run id>/` while the server is unreachable."""

    def __init__(self, *args: Any, journal_dir: str, reconnect_seconds: float = 60, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if remote.is_remote(self._tracking_uri):
            remote.fail_fast()
        # MLflow logs an error for each async batch that fails; ResilientClient reports those itself
        logging.getLogger("mlflow.utils.async_logging.async_logging_queue").setLevel(logging.CRITICAL)
        self._mlflow_client = ResilientClient(self._mlflow_client, Path(journal_dir), reconnect_seconds)

    @property
    def journal(self) -> Journal | None:
        """Where this run's writes went while the server was away; None if it never was."""
        return self._mlflow_client.journal

    @override
    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        # MLFlowLogger.finalize, less its get_run, which needs the server
        if not self._initialized:
            return
        if self._checkpoint_callback:
            self._scan_and_log_checkpoints(self._checkpoint_callback)
        self._mlflow_client.flush()  # every batch settled before the status: in the server, or journaled first
        self.experiment.set_terminated(self.run_id, _STATUS.get(status, status))


class ResilientClient:
    """An MlflowClient whose writes go to a journal while the tracking server is unreachable.

    Other calls (get_run, search_runs, ...) go to the server as they are: a read has nothing to keep."""

    def __init__(self, client, journal_dir: Path, reconnect_seconds: float):
        self._client = client
        self._journal_dir = journal_dir
        self._reconnect_seconds = reconnect_seconds
        self.journal: Journal | None = None
        self._offline = False
        self._last_attempt = 0.0
        self._lock = threading.Lock()
        self._in_flight = 0  # async batches whose outcome (server or journal) is not yet settled
        self._settled = threading.Condition()

    def __getattr__(self, name: str) -> Any:  # what this class does not define is the MlflowClient's
        if name.startswith("_"):  # (not its private parts: nor ours before __init__, e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self._client, name)

    def log_batch(self, run_id: str, metrics=(), params=(), tags=(), synchronous: bool | None = None):
        def keep(journal: Journal) -> None:
            journal.log_batch(metrics, params, tags)

        operations = self._write(run_id, keep, self._client.log_batch, run_id, metrics, params, tags,
                                 synchronous=synchronous)
        for future in getattr(operations, "_operation_futures", ()):  # async: the outcome comes later
            with self._settled:
                self._in_flight += 1
            future.add_done_callback(lambda done: self._after_async(run_id, done.exception(), keep))
        return operations

    def flush(self) -> None:
        """Wait until every async batch is in the server or in the journal."""
        with self._settled:
            self._settled.wait_for(lambda: self._in_flight == 0)

    def log_metric(self, run_id: str, key: str, value: float, timestamp: int | None = None, step: int | None = None,
                   **kwargs: Any):
        from mlflow.entities import Metric

        metric = Metric(key, value, timestamp or _now_ms(), step or 0)
        return self._write(run_id, lambda journal: journal.log_batch(metrics=[metric]), self._client.log_metric,
                           run_id, key, value, metric.timestamp, metric.step, **kwargs)

    def set_tag(self, run_id: str, key: str, value: Any, **kwargs: Any):
        from mlflow.entities import RunTag

        return self._write(run_id, lambda journal: journal.log_batch(tags=[RunTag(key, str(value))]),
                           self._client.set_tag, run_id, key, value, **kwargs)

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        self._write(run_id, lambda journal: journal.log_artifact(local_path, artifact_path),
                    self._client.log_artifact, run_id, local_path, artifact_path)

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str | None = None) -> None:
        self._write(run_id, lambda journal: journal.log_artifacts(local_dir, artifact_path),
                    self._client.log_artifacts, run_id, local_dir, artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self._write(run_id, lambda journal: journal.log_text(text, artifact_file),
                    self._client.log_text, run_id, text, artifact_file)

    def set_terminated(self, run_id: str, status: str | None = None, end_time: int | None = None) -> None:
        status, end_time = status or "FINISHED", end_time or _now_ms()
        self._write(run_id, lambda journal: journal.set_terminated(status, end_time),
                    self._client.set_terminated, run_id, status, end_time)

    def _write(self, run_id: str, keep: Callable[[Journal], None], call: Callable[..., Any], *args: Any,
               **kwargs: Any) -> Any:
        if self._offline and not self._back_online():
            keep(self.journal)
            return None
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if not remote.unreachable(error):
                raise
            self._go_offline(run_id, error)
            keep(self.journal)
            return None

    def _after_async(self, run_id: str, error: BaseException | None, keep: Callable[[Journal], None]) -> None:
        try:
            if error is not None and remote.unreachable(error):
                self._go_offline(run_id, error)
                keep(self.journal)
            elif error is not None:
                log.error(f"MLflow did not take a batch of run data for run {run_id}: {error}")
        finally:
            with self._settled:
                self._in_flight -= 1
                self._settled.notify_all()

    def _go_offline(self, run_id: str, error: BaseException) -> None:
        with self._lock:
            if self._offline:
                return
            if self.journal is None:  # before the flag: a write that sees the flag needs the journal
                self.journal = Journal.create(self._journal_dir / run_id, run_id, self.tracking_uri)
            self._offline = True
            self._last_attempt = time.monotonic()
        log.warning(f"MLflow tracking server {self.tracking_uri} is unreachable ({remote.describe(error)}): training "
                    f"goes on and run {run_id}'s data is kept in {self.journal.folder}; the server gets it when it "
                    f"answers again (asked every {self._reconnect_seconds:g} s), or send it later with "
                    f"`{SYNC_COMMAND} {self.journal.folder}`")

    def _back_online(self) -> bool:
        """Every reconnect_seconds: if the server answers, replay the journal into it and go on online."""
        if time.monotonic() - self._last_attempt < self._reconnect_seconds:
            return False
        self._last_attempt = time.monotonic()
        if remote.problem(self.tracking_uri) is not None:
            return False
        try:
            sent = replay(self.journal, self._client)
        except Exception as error:
            if not remote.unreachable(error):  # it would fail again at every attempt; the sync command reports it
                log.error(f"replaying {self.journal.folder} into MLflow failed ({error}); the run goes on writing "
                          f"to the journal only")
                self._reconnect_seconds = math.inf
            return False
        self._offline = False
        log.warning(f"MLflow tracking server {self.tracking_uri} answers again: replayed {sent['records']} journal "
                    f"records into the run ({sent['metrics']} metric values, {sent['artifacts']} artifacts)")
        return True


def _now_ms() -> int:
    return int(time.time() * 1000)
